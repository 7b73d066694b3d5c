"""``elemta queue …``: see and steer the running daemon's queue through the admin socket."""

from __future__ import annotations

import datetime
import json
from typing import Any

import click
from rich.table import Table

from elemta_core.cli.main import admin_call, config_option, console


@click.group()
def queue() -> None:
    """Inspect and steer the delivery queue (live, through the running daemon)."""


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@queue.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--state", type=click.Choice(["active", "deferred", "hold", "failed"]),
              default=None, help="only messages in this state")
@config_option
def queue_list(as_json: bool, state: str | None, config_path: str | None) -> None:
    """Every queued message: id, state, sender, pending recipients, age, last error."""
    res = admin_call(config_path, "queue.list", {"state": state} if state else {})
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    counts = ", ".join(f"{k} {v}" for k, v in res["counts"].items())
    t = Table(title=f"queue ({counts})")
    t.add_column("id", no_wrap=True)
    t.add_column("state", no_wrap=True)
    for col in ("from", "recipients", "size", "age", "next attempt", "last error"):
        t.add_column(col)
    for m in res["messages"]:
        rcpts = ", ".join(f"{r['address']}" + ("" if r["state"] == "pending" else f" ({r['state']})")
                          for r in m["recipients"])
        t.add_row(m["id"], m["state"], m["from"] or "<>", rcpts, str(m["size"] or ""),
                  _age(m["age"]), _when(m["next_attempt"]), m["last_error"] or "")
    console.print(t)


@queue.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@config_option
def queue_show(queue_id: str, as_json: bool, config_path: str | None) -> None:
    """One message: envelope, per-recipient state and headers."""
    m: dict[str, Any] = admin_call(config_path, "queue.show", {"id": queue_id})
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    click.echo(f"id:        {m['id']} ({m['state']})")
    click.echo(f"from:      <{m['from']}>")
    click.echo(f"received:  {_when(m['received_at'])} ({_age(m['age'])} ago), "
               f"{m['attempts']} attempt(s), {m['size']} bytes")
    if m["next_attempt"]:
        click.echo(f"next try:  {_when(m['next_attempt'])}")
    for r in m["recipients"]:
        last = f" — {r['last_code']} {r['last_text']}" if r["last_code"] else ""
        click.echo(f"  to <{r['address']}>: {r['state']}, {r['attempts']} attempt(s){last}")
    click.echo("")
    for name, value in m["headers"]:
        click.echo(f"{name}: {value}")


@queue.command("flush")
@click.argument("queue_id", required=False)
@config_option
def queue_flush(queue_id: str | None, config_path: str | None) -> None:
    """Retry now: one message, or every deferred one."""
    res = admin_call(config_path, "queue.flush", {"id": queue_id} if queue_id else {})
    click.echo(f"flushed {len(res['flushed'])} message(s)")


def _simple(cmd: str, help_text: str) -> click.Command:
    @click.command(cmd, help=help_text)
    @click.argument("queue_id")
    @config_option
    def run(queue_id: str, config_path: str | None) -> None:
        res = admin_call(config_path, f"queue.{cmd}", {"id": queue_id})
        click.echo(f"{res['id']}: {res['result']}")

    return run


queue.add_command(_simple("hold", "Stop delivering a message until it is released."))
queue.add_command(_simple("release", "Deliver a held message again, now."))
queue.add_command(_simple("delete", "Remove a message from the queue without a bounce."))

commands = [queue]
