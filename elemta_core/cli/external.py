"""Author tooling for external plugins: run one outside the server, describe it, pin it.

    elemta plugin test greylist --hook rcpt_to --mail-from a@example.org --rcpt b@localhost
    elemta plugin test python_filter --hook message --message spam.eml
    elemta plugin info external-plugins/greylist/catalog.toml
    elemta plugin pin external-plugins/*/catalog.toml      # refresh sha256 (make checksums)

NAME is a plugin declared in the config (``-c``: ``[[plugins.external]]``, includes or the
plugins directory) or the path of a ``catalog.toml``. The plugin runs exactly as the server
would run it: checksums verified, handshake, Describe, Configure.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from elemta_core.config.errors import ConfigError
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import Action, HeaderChange, HookPoint, HookResult, smtp_reply

config_option = click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                             default=None, help="TOML config file (default: embedded defaults)")


def _fail(msg: str, code: int = 2) -> None:
    click.echo(msg, err=True)
    sys.exit(code)


def find_entry(name: str, config_path: str | None) -> Any:
    """The catalog entry for NAME (a declared plugin or a catalog.toml path)."""
    from elemta_core.external import catalog

    try:
        if name.endswith(".toml") or "/" in name:
            entries = catalog.read_catalog(Path(name).absolute())
            if len(entries) > 1:
                _fail(f"{name} declares {len(entries)} plugins; name one of them with -c")
            return entries[0]
        from elemta_core.daemon import load

        entry = catalog.find(load(config_path), name)
    except ConfigError as e:
        _fail(f"config error: {e}")
    if entry is None:
        _fail(f"no external plugin named {name!r} (declare it in [[plugins.external]], "
              "[plugins] include, or give the path of its catalog.toml)")
    return entry


def _handle(entry: Any, state_dir: Path) -> Any:
    from elemta_core.external.provider import ExternalHandle
    from elemta_core.plugins.api import PluginServices

    return ExternalHandle(entry, PluginServices(hostname="localhost", state_dir=state_dir))


def build_context(hook: HookPoint, peer_ip: str, helo: str | None, mail_from: str | None,
                  rcpts: list[str], message: bytes | None, tags: dict[str, str],
                  tls: bool, auth_user: str | None) -> HookContext:
    from elemta_core.message.message import Message

    ctx = HookContext(session_id="plugin-test", peer_ip=peer_ip, peer_port=40000,
                      local_ip="127.0.0.1", local_port=25, helo=helo, esmtp=True, tls=tls,
                      auth_user=auth_user, tags=dict(tags))
    if hook not in (HookPoint.CONNECT, HookPoint.HELO, HookPoint.STARTTLS, HookPoint.AUTH):
        ctx.begin_transaction("TEST0000001")
        ctx.mail_from = mail_from
    if hook is HookPoint.RCPT_TO:
        ctx.recipient = rcpts[-1] if rcpts else None
        ctx.recipients = rcpts[:-1]
    else:
        ctx.recipients = list(rcpts)
    if message is not None:
        ctx.message = Message(message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return ctx


@dataclass(frozen=True)
class Collected:
    """What the calls left in the context: tags (beyond ``--tag``) and header changes."""

    tags: dict[str, str]
    headers: tuple[HeaderChange, ...]


def collected(ctx: HookContext, given: dict[str, str]) -> Collected:
    return Collected({k: v for k, v in ctx.tags.items() if given.get(k) != v},
                     tuple(ctx.header_changes))


def _header_json(h: HeaderChange) -> dict[str, Any]:
    return {"op": h.op.value, "name": h.name, "value": h.value, "index": h.index}


def result_json(r: HookResult) -> dict[str, Any]:
    return {
        "action": r.action.name.lower(), "code": r.code, "enhanced": r.enhanced, "text": r.text,
        "reply": smtp_reply(r) if r.action is not Action.CONTINUE else None,
        "headers": [_header_json(h) for h in r.headers],
        "tags": dict(r.tags), "reason": r.reason,
    }


@click.command("test")
@click.argument("name")
@click.option("--hook", "hook_name", required=True,
              type=click.Choice([hp.value for hp in HookPoint]), help="the hook to call")
@click.option("--message", "message_file", type=click.Path(exists=True, dir_okay=False),
              help="an .eml file for the message hook")
@click.option("--mail-from", default=None, help="envelope sender")
@click.option("--rcpt", multiple=True, help="recipient (repeat; the last is the one checked)")
@click.option("--helo", default="client.example", show_default=True)
@click.option("--peer-ip", default="192.0.2.1", show_default=True)
@click.option("--tag", multiple=True, help="k=v tags set by earlier plugins")
@click.option("--tls", is_flag=True)
@click.option("--auth-user", default=None)
@click.option("--repeat", default=1, show_default=True, help="call it N times (the last result "
              "is printed; timings to stderr)")
@click.option("--json", "as_json", is_flag=True)
@config_option
def plugin_test(name: str, hook_name: str, message_file: str | None, mail_from: str | None,
                rcpt: tuple[str, ...], helo: str, peer_ip: str, tag: tuple[str, ...], tls: bool,
                auth_user: str | None, repeat: int, as_json: bool,
                config_path: str | None) -> None:
    """Run plugin NAME outside the server and print its answer to one hook call."""
    import time

    from elemta_core.hooks.pipeline import Pipeline

    entry = find_entry(name, config_path)
    hook = HookPoint(hook_name)
    tags = {}
    for t in tag:
        k, eq, v = t.partition("=")
        if not eq or not k:
            raise click.BadParameter(f"{t!r} is not k=v", param_hint="--tag")
        tags[k] = v
    message = Path(message_file).read_bytes() if message_file else None
    if hook is HookPoint.MESSAGE and message is None:
        raise click.BadParameter("the message hook needs --message FILE.eml")

    async def run() -> tuple[HookResult, Collected, dict[str, Any], list[float]]:
        with tempfile.TemporaryDirectory(prefix="elemta-plugin-test-") as tmp:
            h = _handle(entry, Path(tmp))
            await h.start()
            try:
                links = [lk for lk in h.links() if lk.hook is hook]
                if not links:
                    _fail(f"plugin {entry.name} does not register the {hook.value} hook "
                          f"(it registers: {', '.join(lk.hook.value for lk in h.links())})", 1)
                pipe = Pipeline(links)
                times: list[float] = []
                r = HookResult()
                got = Collected({}, ())
                for _ in range(max(repeat, 1)):
                    ctx = build_context(hook, peer_ip, helo, mail_from, list(rcpt), message,
                                        tags, tls, auth_user)
                    t0 = time.perf_counter()
                    r = await pipe.run(hook, ctx)
                    times.append(time.perf_counter() - t0)
                    got = collected(ctx, tags)
                    if r.action is Action.CONTINUE:  # the pipeline merged them into ctx
                        r = HookResult(headers=got.headers, tags=got.tags)
                return r, got, h.info(), times
            finally:
                await h.stop()

    try:
        r, got, info, times = asyncio.run(run())
    except ConfigError as e:
        _fail(str(e), 1)
    if info["failures"]:
        click.echo(f"warning: the call failed ({info['last_error'] or 'timeout or error'}); "
                   f"shown is the failure policy {info['failure_policy']}", err=True)
    if repeat > 1:
        s = sorted(times)
        click.echo(f"{len(s)} calls: p50 {s[len(s) // 2] * 1e6:.0f} µs, "
                   f"p99 {s[int(len(s) * 0.99)] * 1e6:.0f} µs", err=True)
    out = result_json(r)
    out["collected"] = {"tags": got.tags, "headers": [_header_json(h) for h in got.headers]}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{entry.name} {hook.value}: {out['action'].upper()}")
    if out["reply"]:
        click.echo(f"  reply:   {out['reply']}")
    for hc in out["headers"]:
        click.echo(f"  header:  {hc['op']} {hc['name']}: {hc['value']}")
    for k, v in out["tags"].items():
        click.echo(f"  tag:     {k}={v}")
    if out["reason"]:
        click.echo(f"  reason:  {out['reason']}")
    if (got.tags, got.headers) != (dict(r.tags), tuple(r.headers)):
        click.echo("  collected on the way (tags and header changes the message carries on):")
        for hc in out["collected"]["headers"]:
            click.echo(f"    header: {hc['op']} {hc['name']}: {hc['value']}")
        for k, v in got.tags.items():
            click.echo(f"    tag:    {k}={v}")


@click.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@config_option
def plugin_info(name: str, as_json: bool, config_path: str | None) -> None:
    """Launch plugin NAME, print what it describes and how it is configured, and stop it."""
    entry = find_entry(name, config_path)

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="elemta-plugin-info-") as tmp:
            h = _handle(entry, Path(tmp))
            await h.start()
            try:
                info: dict[str, Any] = h.info()
                d = h.supervisor.description
                info["streaming"] = bool(d and d.streaming)
                info["hook_priorities"] = {lk.hook.value: lk.priority for lk in h.links()}
                info["sha256"] = entry.sha256
                info["config"] = entry.config
                return info
            finally:
                await h.stop()

    try:
        info = asyncio.run(run())
    except ConfigError as e:
        _fail(str(e), 1)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for key in ("name", "version", "description", "source", "command", "mode", "streaming",
                "hook_priorities", "failure_policy", "timeout_ms", "sha256", "config"):
        click.echo(f"{key:16} {info.get(key)}")


def pin_catalog(path: Path) -> list[str]:
    """Rewrite the sha256 digests of a catalog file in place; returns the changed paths."""
    from elemta_core.external.catalog import read_catalog
    from elemta_core.external.security import sha256_file

    entries = read_catalog(path.absolute())
    text = path.read_text()
    changed: list[str] = []
    for entry in entries:
        for rel in entry.sha256:
            digest = sha256_file(entry.resolve(rel))
            pattern = re.compile(r'("' + re.escape(rel) + r'"\s*=\s*")([0-9a-fA-F]*)(")')
            new, n = pattern.subn(rf"\g<1>{digest}\g<3>", text)  # a hex digest: no escapes
            if n == 0:
                raise ConfigError(f"sha256.{rel}", "cannot find the digest to rewrite",
                                  f'write it as "{rel}" = "<hex>"', str(path))
            if new != text:
                changed.append(rel)
            text = new
    if changed:
        path.write_text(text)
    return changed


@click.command("pin")
@click.argument("catalogs", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def plugin_pin(catalogs: tuple[str, ...]) -> None:
    """Refresh the sha256 pins of catalog files (after you changed a plugin yourself)."""
    for c in catalogs:
        try:
            changed = pin_catalog(Path(c))
        except (ConfigError, OSError) as e:
            _fail(f"{c}: {e}", 1)
        click.echo(f"{c}: {'updated ' + ', '.join(changed) if changed else 'up to date'}")


for _cmd in (plugin_test, plugin_info, plugin_pin):
    _cmd.elemta_plugin_subcommand = True  # type: ignore[attr-defined]

commands = [plugin_test, plugin_info, plugin_pin]
