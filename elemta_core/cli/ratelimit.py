"""``elemta ratelimit show`` / ``reset``: the rate limiter's live counters.

The running daemon answers over its admin socket, from whichever store its limiter uses. With
no daemon running, a Redis/Valkey store can still be read and cleared directly: the plugin
class (found through its entry point, never imported by name) opens its configured backend.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from elemta_core.admin.client import AdminError, AdminUnavailable, call
from elemta_core.config.errors import ConfigError

PLUGIN = "rate_limiter"

console = Console()
err = Console(stderr=True)

# elemta_core.cli.main loads this module while it is itself loading: nothing is imported back.
config_option = click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                             default=None, help="TOML config file (default: embedded defaults)")

selectors = [
    click.option("--ip", help="a client address (IPv6: counted per its prefix)"),
    click.option("--sender", help="an envelope sender (also shows its domain's counters)"),
    click.option("--user", "auth_user", help="an authenticated user"),
    click.option("--domain", help="a recipient or sender domain"),
]


def _with_selectors(fn: Any) -> Any:
    for opt in reversed(selectors):
        fn = opt(fn)
    return fn


def _load(config_path: str | None) -> Any:
    from elemta_core.daemon import load

    try:
        return load(config_path)
    except ConfigError as e:
        err.print(f"config error: {e}", highlight=False)
        sys.exit(2)


def _ask(config_path: str | None, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    cfg = _load(config_path)
    try:
        result: dict[str, Any] = call(cfg.admin_socket, cmd, args)
        return result
    except AdminError as e:
        err.print(f"error: {e}", highlight=False)
        sys.exit(1)
    except AdminUnavailable as e:
        offline = _offline(cfg)
        if offline is None:
            err.print(f"elemta is not running ({e}); the memory backend lives in the daemon, "
                      "so there is nothing to read", highlight=False)
            sys.exit(3)
        try:
            result = asyncio.run(offline(cfg.section(PLUGIN), cmd, args))
            return dict(result)
        except (ValueError, LookupError, OSError) as e:
            err.print(f"error: {e}", highlight=False)
            sys.exit(1)


def _offline(cfg: Any) -> Any:
    """The plugin's direct access to a shared store, when its config names one."""
    from elemta_core.plugins.manager import discover

    cls = discover().get(PLUGIN)
    section = cfg.section(PLUGIN)
    if cls is None or section is None or getattr(section, "backend", None) is None:
        return None
    if getattr(section.backend, "value", "") != "redis":
        return None
    return getattr(cls, "admin_offline", None)


def _args(**kw: str | None) -> dict[str, Any]:
    chosen = {k: v for k, v in kw.items() if v is not None}
    return chosen


@click.group()
def ratelimit() -> None:
    """Rate limiter counters (live from the running daemon or the shared store)."""


@ratelimit.command("show")
@_with_selectors
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@config_option
def show(ip: str | None, sender: str | None, auth_user: str | None, domain: str | None,
         as_json: bool, config_path: str | None) -> None:
    """Current counters for one subject, or every live counter when none is given."""
    res = _ask(config_path, "ratelimit.show",
               _args(ip=ip, sender=sender, auth_user=auth_user, domain=domain))
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    t = Table(title=f"rate limits ({res.get('backend', '?')} backend)")
    for col in ("key", "limit", "kind", "current", "max", "period s", "resets in s"):
        t.add_column(col)
    for row in res.get("counters", []):
        t.add_row(row["key"], row.get("limit_name", ""), row.get("kind", ""),
                  str(row.get("current", "")), str(row.get("limit") or "-"),
                  str(row.get("period_s", "")), str(row.get("reset_in_s", "")))
    console.print(t)
    if res.get("truncated"):
        err.print("(only the first counters are listed: give --ip, --sender, --user or --domain)")


@ratelimit.command("reset")
@_with_selectors
@click.option("--all", "everything", is_flag=True, help="clear every counter")
@config_option
def reset(ip: str | None, sender: str | None, auth_user: str | None, domain: str | None,
          everything: bool, config_path: str | None) -> None:
    """Clear the counters of a subject (or --all), e.g. after a false alarm."""
    args = _args(ip=ip, sender=sender, auth_user=auth_user, domain=domain)
    if not args and not everything:
        raise click.UsageError("say what to reset: --ip, --sender, --user, --domain or --all")
    if everything:
        if args:
            raise click.UsageError("--all clears everything: give it alone")
        args = {"all": True}
    res = _ask(config_path, "ratelimit.reset", args)
    click.echo(f"deleted {res.get('deleted', 0)} counter(s)")


commands = [ratelimit]
