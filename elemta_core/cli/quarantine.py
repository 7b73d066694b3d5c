"""``elemta quarantine list|show|release|delete``.

Everything goes through the running daemon's admin socket; ``release`` must (the message
re-enters the live queue). With no daemon running, ``list``, ``show`` and ``delete`` work on
the quarantine directory directly, so an operator can still inspect and clean it.
"""

from __future__ import annotations

import base64
import datetime
import json
import sys
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["commands", "quarantine"]

console = Console()
err = Console(stderr=True)

config_option = click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                             default=None, help="TOML config file (default: embedded defaults)")


def _cfg(config_path: str | None) -> Any:
    from elemta_core.cli.main import _load

    return _load(config_path)


def _ask(cfg: Any, cmd: str, args: dict[str, Any] | None = None) -> tuple[bool, Any]:
    """(True, result) from the daemon, or (False, None) when no daemon runs."""
    from elemta_core.admin.client import AdminError, AdminUnavailable, call

    try:
        return True, call(cfg.admin_socket, cmd, args)
    except AdminUnavailable:
        return False, None
    except AdminError as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        sys.exit(1)


def _offline(cfg: Any) -> Any:
    from elemta_core.queue.quarantine import Quarantine

    return Quarantine(cfg.state_dir / "quarantine")


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group("quarantine")
def quarantine() -> None:
    """Messages a plugin set aside (virus, spam …): inspect, release or delete them."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@config_option
def quarantine_list(as_json: bool, config_path: str | None) -> None:
    """Every quarantined message, oldest first."""
    cfg = _cfg(config_path)
    live, result = _ask(cfg, "quarantine.list")
    entries = result["entries"] if live else [asdict(e) for e in _offline(cfg).entries()]
    if as_json:
        click.echo(json.dumps({"entries": entries}, indent=2))
        return
    t = Table(title=f"quarantine ({len(entries)})" + ("" if live else " (daemon not running)"))
    id_width = max([8, *(len(e["queue_id"]) for e in entries)])
    t.add_column("queue id", no_wrap=True, min_width=id_width)
    for col in ("received (UTC)", "plugin", "reason", "from", "recipients", "size"):
        t.add_column(col)
    for e in entries:
        t.add_row(e["queue_id"], _when(e["received_at"]), e["plugin"], e["reason"],
                  e["mail_from"] or "<>", ", ".join(e["recipients"]), str(e["size"]))
    console.print(t)


@quarantine.command("show")
@click.argument("queue_id")
@click.option("--raw", is_flag=True, help="print the whole message as stored")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@config_option
def quarantine_show(queue_id: str, raw: bool, as_json: bool, config_path: str | None) -> None:
    """One quarantined message: why, from whom, to whom, and its headers (or --raw)."""
    from elemta_core.message.message import Message
    from elemta_core.queue.quarantine import check_queue_id

    cfg = _cfg(config_path)
    live, result = _ask(cfg, "quarantine.show", {"id": queue_id, "raw": raw})
    if live:
        entry, headers = result["entry"], result["headers"]
        data = base64.b64decode(result["message_b64"]) if raw else b""
    else:
        try:
            e, data = _offline(cfg).entry(check_queue_id(queue_id))
        except (LookupError, ValueError) as exc:
            err.print(f"error: {exc}", highlight=False, markup=False)
            sys.exit(1)
        entry, headers = asdict(e), Message(data).headers
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if as_json:
        click.echo(json.dumps({"entry": entry, "headers": headers}, indent=2))
        return
    click.echo(f"queue id:   {entry['queue_id']}")
    click.echo(f"reason:     {entry['reason']}" + (f" ({entry['plugin']})" if entry["plugin"] else ""))
    click.echo(f"received:   {_when(entry['received_at'])} UTC from [{entry['peer_ip']}] "
               f"helo {entry['helo'] or '-'}")
    click.echo(f"from:       <{entry['mail_from']}>")
    click.echo(f"recipients: {', '.join(entry['recipients'])}")
    click.echo(f"size:       {entry['size']} bytes")
    for k, v in sorted(entry["tags"].items()):
        click.echo(f"tag:        {k} = {v}")
    click.echo("")
    for name, value in headers:
        click.echo(f"{name}: {value}")


@quarantine.command("release")
@click.argument("queue_ids", nargs=-1, required=True)
@config_option
def quarantine_release(queue_ids: tuple[str, ...], config_path: str | None) -> None:
    """Put messages back into the queue for delivery (needs the running daemon)."""
    cfg = _cfg(config_path)
    for qid in queue_ids:
        live, _ = _ask(cfg, "quarantine.release", {"id": qid})
        if not live:
            err.print(f"elemta is not running (no daemon at {cfg.admin_socket}): release "
                      "re-injects into the live queue; start the daemon first",
                      highlight=False, markup=False)
            sys.exit(3)
        click.echo(f"released {qid}")


@quarantine.command("delete")
@click.argument("queue_ids", nargs=-1, required=True)
@config_option
def quarantine_delete(queue_ids: tuple[str, ...], config_path: str | None) -> None:
    """Delete quarantined messages for good."""
    from elemta_core.queue.quarantine import check_queue_id

    cfg = _cfg(config_path)
    for qid in queue_ids:
        live, _ = _ask(cfg, "quarantine.delete", {"id": qid})
        if not live:
            try:
                _offline(cfg).delete(check_queue_id(qid))
            except (LookupError, ValueError) as exc:
                err.print(f"error: {exc}", highlight=False, markup=False)
                sys.exit(1)
        click.echo(f"deleted {qid}")


commands = [quarantine]
