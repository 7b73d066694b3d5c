"""The ``elemta`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from elemta_core import __version__
from elemta_core.admin.client import AdminError, AdminUnavailable, call
from elemta_core.config.errors import ConfigError

console = Console()


def say_error(text: str) -> None:
    """One unwrapped line on stderr, so scripts and people read the same thing."""
    click.echo(text, err=True)

config_option = click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                             default=None, help="TOML config file (default: embedded defaults)")


def _load(config_path: str | None) -> Any:
    from elemta_core.daemon import load

    try:
        return load(config_path)
    except ConfigError as e:
        say_error(f"config error: {e}")
        sys.exit(2)


def admin_call(config_path: str | None, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """Ask the running daemon; exits with a clear message when none runs."""
    cfg = _load(config_path)
    try:
        return call(cfg.admin_socket, cmd, args)
    except AdminUnavailable as e:
        say_error(f"elemta is not running: {e}")
        sys.exit(3)
    except AdminError as e:
        say_error(f"error: {e}")
        sys.exit(1)


@click.group()
@click.version_option(__version__, prog_name="elemta")
def cli() -> None:
    """Elemta, a mail server whose policy lives in plugins."""


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"elemta {__version__}")


@cli.command()
@config_option
@click.option("--worker-index", type=int, default=None, hidden=True,
              help="internal: run as worker N under a supervisor")
def serve(config_path: str | None, worker_index: int | None) -> None:
    """Run the server (no -c: embedded defaults, 127.0.0.1:2525)."""
    from elemta_core.daemon import run

    try:
        run(config_path, worker_index)
    except ConfigError as e:
        say_error(f"config error: {e}")
        sys.exit(2)
    except OSError as e:
        say_error(f"cannot start: {e}")
        sys.exit(1)


@cli.group()
def config() -> None:
    """Configuration tools."""


@config.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate a config file without starting anything."""
    from elemta_core.daemon import Daemon, load
    from elemta_core.plugins.api import PluginServices
    from elemta_core.plugins.manager import PluginManager

    try:
        cfg = load(config_path)
        services = PluginServices(hostname=cfg.server.hostname, state_dir=cfg.state_dir, config=cfg)
        mgr = PluginManager(cfg, services)
        for p in Daemon(cfg).extra_providers(cfg):
            mgr.add_provider(p)
        handles = mgr.build()
    except ConfigError as e:
        say_error(f"config error: {e}")
        sys.exit(2)
    names = ", ".join(h.name for h in handles) or "none"
    click.echo(f"{config_path or '(embedded defaults)'}: OK; plugins: {names}")


@cli.group()
def plugin() -> None:
    """Inspect plugins."""


def _render_plugins(rows: list[dict[str, Any]], live: bool) -> None:
    t = Table(title="plugins" + ("" if live else " (daemon not running)"))
    for col in ("name", "kind", "version", "hooks", "priority", "failure policy", "state", "pid",
                "restarts", "last error", "avg µs"):
        t.add_column(col)
    for p in rows:
        t.add_row(p["name"], p["kind"], p["version"], ", ".join(p["hooks"]), str(p["priority"]),
                  p["failure_policy"], p["state"], str(p.get("pid") or "-"),
                  str(p.get("restarts", 0)), p.get("last_error") or "",
                  str(p.get("avg_latency_us") or "-"))
    console.print(t)
    for p in rows:  # the table cuts long texts to the terminal; why a plugin is down, in full
        if p["state"] in ("refused", "disabled", "failed", "backoff") and p.get("last_error"):
            click.echo(f"{p['name']} is {p['state']}: {p['last_error']}")


@plugin.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@config_option
def plugin_list(as_json: bool, config_path: str | None) -> None:
    """Every plugin, live from the running daemon (or as configured when none runs)."""
    cfg = _load(config_path)
    live = True
    try:
        rows = call(cfg.admin_socket, "plugin.list")["plugins"]
    except AdminUnavailable:
        live = False
        rows = configured_plugins(cfg)
    except AdminError as e:
        say_error(f"error: {e}")
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({"plugins": rows}, indent=2))
    else:
        _render_plugins(rows, live)


def configured_plugins(cfg: Any) -> list[dict[str, Any]]:
    from elemta_core.daemon import Daemon
    from elemta_core.plugins.api import PluginServices
    from elemta_core.plugins.manager import PluginManager, PluginState, stopped_info

    services = PluginServices(hostname=cfg.server.hostname, state_dir=cfg.state_dir, config=cfg)
    mgr = PluginManager(cfg, services)
    for p in Daemon(cfg).extra_providers(cfg):
        mgr.add_provider(p)
    rows = [stopped_info(mgr.classes[n], cfg) for n in mgr.enabled_names() if n in mgr.classes]
    try:
        for h in mgr.build():
            if h.kind != "builtin":
                info = h.info()
                info["state"] = PluginState.STOPPED
                rows.append(info)
    except ConfigError as e:
        say_error(f"config error: {e}")
    return rows


@cli.command()
@config_option
def status(config_path: str | None) -> None:
    """Show the running daemon's status."""
    click.echo(json.dumps(admin_call(config_path, "status"), indent=2))


@cli.command()
@config_option
def reload(config_path: str | None) -> None:
    """Ask the running daemon to reload its config (like SIGHUP)."""
    admin_call(config_path, "config.reload")
    click.echo("reloaded")


@cli.group()
def user() -> None:
    """SMTP AUTH users file tools."""


@user.command("hash")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def user_hash(password: str) -> None:
    """Print a salted scrypt hash for a users-file line (user:HASH)."""
    from elemta_core.smtp.users import hash_password

    click.echo(hash_password(password))


@user.command("add")
@click.argument("users_file", type=click.Path(dir_okay=False))
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def user_add(users_file: str, username: str, password: str) -> None:
    """Add or replace USERNAME in USERS_FILE."""
    from elemta_core.smtp.users import hash_password

    if ":" in username or not username.strip():
        raise click.BadParameter("a username cannot be empty or contain ':'")
    p = Path(users_file)
    lines = [ln for ln in (p.read_text().splitlines() if p.exists() else [])
             if ln.partition(":")[0] != username]
    lines.append(f"{username}:{hash_password(password)}")
    p.write_text("\n".join(lines) + "\n")
    p.chmod(0o600)
    click.echo(f"{username} written to {p}")


#: Command modules owned by other parts of the system; each exposes ``commands`` (a list of
#: click commands or groups) and is loaded when present.
COMMAND_MODULES = (
    "elemta_core.cli.external",    # plugin test / info / pin
    "elemta_core.cli.scaffold",    # plugin new
    "elemta_core.cli.auth",        # auth spf / verify, dkim keygen
    "elemta_core.cli.ratelimit",   # ratelimit show / reset
    "elemta_core.cli.quarantine",  # quarantine list / show / release / delete
    "elemta_core.cli.queue",       # queue list / show / flush / hold / release / delete
)


def _load_command_modules() -> None:
    import importlib
    import importlib.util

    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        mod = importlib.import_module(name)
        for cmd in getattr(mod, "commands", ()):
            target = plugin if getattr(cmd, "elemta_plugin_subcommand", False) else cli
            target.add_command(cmd)


_load_command_modules()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
