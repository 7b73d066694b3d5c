"""`elemta auth spf|verify` and `elemta dkim keygen`: the server's checks, on demand.

They run the installed auth plugins' own code (found through the ``elemta.plugins`` entry
points, as the server finds them) with the server's resolver and ``[dns]`` settings; a
``--nameserver`` overrides those. Output is JSON, or text for people with ``--text``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import parse_hostport
from elemta_core.dns.config import DnsConfig
from elemta_core.dns.resolver import Resolver

config_option = click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                             default=None, help="TOML config ([dns], [authentication])")
nameserver_option = click.option("--nameserver", "nameservers", multiple=True,
                                 metavar="HOST:PORT",
                                 help="ask this DNS server instead of the configured ones")
text_option = click.option("--text", "as_text", is_flag=True, help="human-readable output")


def _fail(msg: str, code: int = 2) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _setup(config_path: str | None, nameservers: tuple[str, ...]) -> tuple[Any, dict[str, Any],
                                                                           Resolver]:
    from elemta_core.daemon import load
    from elemta_core.plugins.manager import discover

    classes = discover()
    try:
        cfg = load(config_path, classes)
        dns_cfg: DnsConfig = cfg.dns
        if nameservers:
            for i, ns in enumerate(nameservers):
                parse_hostport(f"--nameserver[{i}]", ns, 53)
            dns_cfg = replace(dns_cfg, nameservers=list(nameservers))
            dns_cfg.validate()
    except ConfigError as e:
        _fail(f"config: {e}")
    return cfg, classes, Resolver(dns_cfg)


def _plugin(classes: dict[str, Any], name: str) -> Any:
    cls = classes.get(name)
    if cls is None:
        _fail(f"the {name} plugin is not installed (pip install elemta)")
    return cls


@click.group()
def auth() -> None:
    """Email authentication checks: SPF, DKIM, DMARC, ARC."""


@auth.command("spf")
@click.option("--ip", required=True, help="the connecting client's address")
@click.option("--mail-from", "mail_from", default="", help="MAIL FROM address (empty: HELO)")
@click.option("--helo", default="", help="HELO/EHLO name")
@nameserver_option
@text_option
@config_option
def auth_spf(ip: str, mail_from: str, helo: str, nameservers: tuple[str, ...], as_text: bool,
             config_path: str | None) -> None:
    """Evaluate SPF for a client address and sender, as the server would."""
    if not mail_from and not helo:
        _fail("give --mail-from, --helo or both")
    cfg, classes, resolver = _setup(config_path, nameservers)
    spf = _plugin(classes, "spf")
    report = asyncio.run(spf.diagnose(resolver, ip, mail_from, helo, cfg.server.hostname))
    if as_text:
        click.echo(f"spf={report['result']} ({report['identity']} {report['domain']})")
        if report["explanation"]:
            click.echo(f"  explanation: {report['explanation']}")
        if report["received_spf"]:
            click.echo(f"  Received-SPF: {report['received_spf']}")
    else:
        click.echo(json.dumps(report, indent=2))


@auth.command("verify")
@click.argument("eml", type=click.Path(dir_okay=False, exists=True, allow_dash=True))
@click.option("--ip", default=None, help="client address, for SPF")
@click.option("--mail-from", "mail_from", default=None, help="MAIL FROM address, for SPF")
@click.option("--helo", default=None, help="HELO name, for SPF")
@nameserver_option
@text_option
@config_option
def auth_verify(eml: str, ip: str | None, mail_from: str | None, helo: str | None,
                nameservers: tuple[str, ...], as_text: bool, config_path: str | None) -> None:
    """Verify a message file: SPF (with --ip), every DKIM signature, DMARC and ARC."""
    try:
        raw = sys.stdin.buffer.read() if eml == "-" else Path(eml).read_bytes()
    except OSError as e:
        _fail(f"{eml}: {e.strerror or e}")
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")  # files saved with Unix line ends
    cfg, classes, resolver = _setup(config_path, nameservers)
    dmarc = _plugin(classes, "dmarc")
    auth_cfg = cfg.section("authentication")
    authserv = (getattr(auth_cfg, "authserv_id", "") or cfg.server.hostname)
    report = asyncio.run(dmarc.diagnose(resolver, raw, auth_cfg, authserv, ip, mail_from, helo))
    if not as_text:
        click.echo(json.dumps(report, indent=2))
        return
    if report["spf"]:
        click.echo(f"spf:   {report['spf']['result']} ({report['spf']['domain']})")
    sigs = report["dkim"] or [{"result": "none", "domain": "", "selector": "", "reason": ""}]
    for s in sigs:
        where = f" d={s['domain']} s={s['selector']}" if s["domain"] else ""
        why = f" - {s['reason']}" if s["reason"] else ""
        click.echo(f"dkim:  {s['result']}{where}{why}")
    d = report["dmarc"]
    click.echo(f"dmarc: {d['result']} (From {d['domain'] or '?'}, policy {d['policy']})"
               + (f" - {d['reason']}" if d["reason"] else ""))
    click.echo(f"arc:   cv={report['arc']['cv']}"
               + (f" - {report['arc']['reason']}" if report["arc"]["reason"] else ""))
    click.echo(report["authentication_results"])


@click.group()
def dkim() -> None:
    """DKIM key tools."""


@dkim.command("keygen")
@click.option("--domain", required=True, help="the signing domain (d=)")
@click.option("--selector", required=True, help="the selector (s=)")
@click.option("--type", "key_type", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True)
@click.option("--bits", type=click.IntRange(1024, 8192), default=2048, show_default=True,
              help="RSA key size")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="private key file (default: ./<selector>.<domain>.key)")
@config_option
def dkim_keygen(domain: str, selector: str, key_type: str, bits: int, out: str | None,
                config_path: str | None) -> None:
    """Write a new DKIM private key and print the DNS TXT record to publish."""
    from elemta_core.plugins.manager import discover

    signer = _plugin(discover(), "dkim_sign")
    domain = domain.lower().rstrip(".")
    if "." not in domain or any(not label for label in domain.split(".")):
        _fail(f"{domain!r} is not a domain name")
    if not selector or any(c in selector for c in " ;=/\t"):
        _fail(f"{selector!r} is not a selector")
    path = Path(out or f"{selector}.{domain}.key")
    try:
        line = signer.keygen(path, domain, selector, key_type, bits)
    except FileExistsError:
        _fail(f"{path} exists; remove it or give --out")
    except OSError as e:
        _fail(f"{path}: {e.strerror or e}")
    click.echo(f"; private key written to {path} (mode 0600)", err=True)
    click.echo(line)


commands = [auth, dkim]
