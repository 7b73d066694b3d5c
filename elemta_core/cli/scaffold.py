"""``elemta plugin new NAME --lang python|go|node``: a working external plugin in one command.

The skeleton (from ``elemta_core/scaffold_templates/<lang>``) is a real plugin, not an
outline: it refuses senders from the domains in its config at MAIL FROM, ships its catalog
entry with every run file pinned, and a test that drives it the way the server does. Go and
Node plugins also get the .proto files they compile or load; Go is built (``./build.sh``,
which pins the binary) and Node's libraries installed (``npm ci``) unless ``--no-build``.

Templates: a ``.tmpl`` file has ``{{name}}`` replaced and loses the suffix;
``{{sha256:FILE}}`` becomes that written file's digest; ``dot-X`` is written as ``.X``.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.resources
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import click

__all__ = ["Lang", "ScaffoldError", "commands", "plugin_new", "write_skeleton"]

#: Plugin names: a subset of the catalog's, usable as a file, binary and npm package name.
NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_SHA256_TOKEN = re.compile(r"\{\{sha256:([^}]+)\}\}")
BUILD_TIMEOUT_S = 600
#: Where the repository's .proto files are when elemta runs from a checkout.
DEFAULT_PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"


class ScaffoldError(Exception):
    """A skeleton cannot be written or built; the message says what to do."""


@dataclass(frozen=True)
class LangSpec:
    protos: tuple[str, ...]  # copied into <dir>/proto
    build: tuple[str, ...]  # run in <dir> to make it runnable ("" = nothing to do)
    build_hint: str
    test: str  # how to run the generated test


class Lang(enum.Enum):
    PYTHON = LangSpec((), (), "", "python -m pytest test_plugin.py")
    GO = LangSpec(("elemta/plugin/v1/plugin.proto",), ("bash", "build.sh"),
                  "apt-get install golang-go golang-github-hashicorp-go-plugin-dev "
                  "golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler; then ./build.sh",
                  "./build.sh test")
    NODE = LangSpec(("elemta/plugin/v1/plugin.proto", "grpc_health/v1/health.proto",
                     "plugin/grpc_controller.proto"),
                    ("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"),
                    "install Node.js 18+ and npm, then run npm ci", "npm test")

    @property
    def templates(self) -> Traversable:
        return importlib.resources.files("elemta_core") / "scaffold_templates" / self.name.lower()


def _walk(t: Traversable, rel: Path = Path()) -> list[tuple[Path, Traversable]]:
    out: list[tuple[Path, Traversable]] = []
    for child in sorted(t.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            out += _walk(child, rel / child.name)
        elif child.name != "__pycache__":
            out.append((rel / child.name, child))
    return out


def _target_name(rel: Path) -> Path:
    name = rel.name.removesuffix(".tmpl")
    if name.startswith("dot-"):
        name = "." + name[len("dot-"):]
    return rel.with_name(name)


def _write(path: Path, data: bytes, executable: bool = False) -> None:
    """Files 0644/0755 whatever the umask: the server refuses group/world-writable plugins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.write_bytes(data)
    path.chmod(0o755 if executable else 0o644)


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ScaffoldError(f"{name!r} is not a plugin name: use a lower-case letter, then "
                            "lower-case letters, digits, '_' or '-' (at most 63)")


def write_skeleton(name: str, lang: Lang, target: Path, proto_dir: Path = DEFAULT_PROTO_DIR
                   ) -> list[Path]:
    """Write the skeleton into ``target`` (absent or empty); returns the files written."""
    check_name(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} already exists and is not an empty directory; choose "
                            "another --dir or name")
    for proto in lang.value.protos:
        if not (proto_dir / proto).is_file():
            raise ScaffoldError(f"{proto_dir / proto} not found: pass --proto-dir, the proto/ "
                                "directory of the Elemta source")
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    written: list[Path] = []
    pinned_later: list[tuple[Path, str]] = []
    for rel, src in _walk(lang.templates):
        data = src.read_bytes()
        dest = target / _target_name(rel)
        if rel.name.endswith(".tmpl"):
            text = data.decode("utf-8").replace("{{name}}", name)
            if _SHA256_TOKEN.search(text):
                pinned_later.append((dest, text))  # after the files it pins exist
                continue
            data = text.encode("utf-8")
        _write(dest, data, executable=dest.suffix == ".sh")
        written.append(dest)
    for rel_proto in lang.value.protos:
        dest = target / "proto" / rel_proto
        _write(dest, (proto_dir / rel_proto).read_bytes())
        written.append(dest)
    for dest, text in pinned_later:
        _write(dest, _fill_digests(text, target, dest.name).encode("utf-8"))
        written.append(dest)
    return written


def _fill_digests(text: str, root: Path, template: str) -> str:
    """Replace each ``{{sha256:FILE}}`` with the digest of ``root/FILE``."""
    def digest(m: re.Match[str]) -> str:
        pinned = root / m.group(1)
        if not pinned.is_file():
            raise ScaffoldError(f"template {template} pins {m.group(1)}, which the skeleton "
                                "does not have")
        return hashlib.sha256(pinned.read_bytes()).hexdigest()

    return _SHA256_TOKEN.sub(digest, text)


def build(lang: Lang, target: Path) -> None:
    """Make the skeleton runnable (Go: compile and pin; Node: install its libraries)."""
    argv = lang.value.build
    if not argv:
        return
    tool = "go" if lang is Lang.GO else argv[0]
    if shutil.which(tool) is None:
        raise ScaffoldError(f"{tool} is not installed, so the skeleton was written but not "
                            f"built: {lang.value.build_hint}")
    try:
        r = subprocess.run(list(argv), cwd=target, capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ScaffoldError(f"{' '.join(argv)} did not finish within {BUILD_TIMEOUT_S}s") from None
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise ScaffoldError(f"{' '.join(argv)} failed in {target} (exit {r.returncode}):\n{tail}")


@click.command("new")
@click.argument("name")
@click.option("--lang", "lang_name", required=True,
              type=click.Choice([lang.name.lower() for lang in Lang]),
              help="the plugin's language")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="where to write it (default: ./NAME); must be absent or empty")
@click.option("--proto-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=DEFAULT_PROTO_DIR, show_default=True,
              help="the Elemta proto/ directory (Go and Node plugins get a copy)")
@click.option("--no-build", is_flag=True,
              help="write the files only (Go: no ./build.sh, so no catalog.toml yet; "
                   "Node: no npm ci)")
def plugin_new(name: str, lang_name: str, directory: Path | None, proto_dir: Path,
               no_build: bool) -> None:
    """Write a working plugin skeleton NAME: code, catalog.toml (pinned) and a test."""
    lang = Lang[lang_name.upper()]
    target = (directory or Path(name)).absolute()
    try:
        files = write_skeleton(name, lang, target, proto_dir)
        if not no_build:
            build(lang, target)
    except (ScaffoldError, OSError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"wrote {lang_name} plugin {name} in {target} ({len(files)} files)")
    steps = []
    if no_build and lang.value.build:
        steps.append(f"cd {target} && {' '.join(lang.value.build)}")
    steps += [f"cd {target} && {lang.value.test}",
              (f"elemta plugin test {target / 'catalog.toml'} --hook mail_from "
               "--mail-from someone@blocked.example"),
              f'enable it: [plugins] include = ["{target / "catalog.toml"}"]',
              f"after each edit: elemta plugin pin {target / 'catalog.toml'}"
              + (" (Go: ./build.sh pins)" if lang is Lang.GO else "")]
    click.echo("next:\n" + "\n".join(f"  {s}" for s in steps))


plugin_new.elemta_plugin_subcommand = True  # type: ignore[attr-defined]

commands = [plugin_new]
