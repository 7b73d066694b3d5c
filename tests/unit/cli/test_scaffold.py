"""``elemta plugin new``: what is written, with which modes and pins, and every refusal."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from elemta_core.cli.main import cli
from elemta_core.cli.scaffold import DEFAULT_PROTO_DIR, Lang, ScaffoldError, write_skeleton
from elemta_core.external.catalog import read_catalog

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["plugin", "new", *args])
    return r.exit_code, r.output


@pytest.mark.parametrize("lang", list(Lang))
def test_a_skeleton_is_complete_and_pinned(tmp_path: Path, lang: Lang) -> None:
    old = os.umask(0o002)  # a group-writable umask must not make the plugin refusable
    try:
        files = write_skeleton("my-check", lang, tmp_path / "p")
    finally:
        os.umask(old)
    root = tmp_path / "p"
    for f in files:
        text = f.read_bytes()
        assert b"{{name}}" not in text and b"{{sha256:" not in text, f  # placeholders filled
        assert f.stat().st_mode & 0o777 == (0o755 if f.suffix == ".sh" else 0o644), f
    assert root.stat().st_mode & 0o777 == 0o755
    if lang is Lang.GO:  # compiled: build.sh writes catalog.toml with the binary's digest
        assert not (root / "catalog.toml").exists()
        assert '"build/my-check" = "@SHA256@"' in (root / "catalog.toml.in").read_text()
        assert (root / "proto/elemta/plugin/v1/plugin.proto").read_bytes() == \
            (DEFAULT_PROTO_DIR / "elemta/plugin/v1/plugin.proto").read_bytes()
        assert (root / ".gitignore").is_file()
        return
    [entry] = read_catalog(root / "catalog.toml")
    assert entry.name == "my-check" and entry.config == {"blocked_domains": ["blocked.example"]}
    for rel, digest in entry.sha256.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest
    run_files = {"python": {"plugin.py"},
                 "node": {"plugin.js", "elemta_plugin.js", "package-lock.json"}}
    assert set(entry.sha256) == run_files[lang.name.lower()]


def test_node_skeleton_lock_and_package_agree_and_sdk_matches_node_filter(tmp_path: Path) -> None:
    write_skeleton("demo", Lang.NODE, tmp_path / "n")
    pkg = (tmp_path / "n/package.json").read_text()
    lock = (tmp_path / "n/package-lock.json").read_text()
    assert '"name": "elemta-plugin-demo"' in pkg and '"name": "elemta-plugin-demo"' in lock
    for dep in ('"@grpc/grpc-js": "1.14.7"', '"@grpc/proto-loader": "0.8.1"'):
        assert dep in pkg and dep in lock
    # One Node SDK: the template and node_filter's copy are the same file.
    assert (tmp_path / "n/elemta_plugin.js").read_bytes() == \
        (REPO / "external-plugins/node_filter/elemta_plugin.js").read_bytes()


def test_go_build_script_matches_go_filters(tmp_path: Path) -> None:
    """The skeleton's build.sh is go_filter's with the name and proto dir swapped in."""
    write_skeleton("demo", Lang.GO, tmp_path / "g")
    ours = (tmp_path / "g/build.sh").read_text().splitlines()
    theirs = (REPO / "external-plugins/go_filter/build.sh").read_text().splitlines()
    differ = [(a, b) for a, b in zip(ours, theirs) if a != b]
    assert len(ours) == len(theirs) and len(differ) == 5, differ
    assert ("NAME=demo", "NAME=go_filter") in differ


@pytest.mark.parametrize("name", ["", "Upper", "1abc", "a b", "a/b", "../x", "x" * 64, "a.b"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    code, out = run(name, "--lang", "python", "--dir", str(tmp_path / "x"))
    assert code == 1 and "is not a plugin name" in out
    assert not (tmp_path / "x").exists()


def test_an_existing_directory_with_files_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, out = run("demo", "--lang", "python", "--dir", str(tmp_path))
    assert code == 1 and "already exists and is not an empty directory" in out
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("demo", "--lang", "python", "--dir", str(empty))[0] == 0


def test_missing_protos_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="plugin.proto not found: pass --proto-dir"):
        write_skeleton("demo", Lang.NODE, tmp_path / "n", proto_dir=tmp_path)
    code, out = run("demo", "--lang", "go", "--dir", str(tmp_path / "g"), "--proto-dir",
                    str(tmp_path))
    assert code == 1 and "pass --proto-dir" in out


def test_no_build_writes_and_says_what_to_run(tmp_path: Path) -> None:
    code, out = run("demo", "--lang", "go", "--dir", str(tmp_path / "g"), "--no-build")
    assert code == 0, out
    assert f"cd {tmp_path / 'g'} && bash build.sh" in out
    assert f"elemta plugin pin {tmp_path / 'g' / 'catalog.toml'}" in out


def test_a_missing_toolchain_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, out = run("demo", "--lang", "node", "--dir", str(tmp_path / "n"))
    assert code == 1
    assert "npm is not installed, so the skeleton was written but not built" in out
    assert (tmp_path / "n/plugin.js").is_file()


def test_python_skeleton_config_parses_as_the_server_would(tmp_path: Path) -> None:
    write_skeleton("demo", Lang.PYTHON, tmp_path / "p")
    data = tomllib.loads((tmp_path / "p/catalog.toml").read_text())
    assert data["plugins"]["external"][0]["command"] == ["{python}", "plugin.py"]
    compile((tmp_path / "p/plugin.py").read_text(), "plugin.py", "exec")
    compile((tmp_path / "p/test_plugin.py").read_text(), "test_plugin.py", "exec")
