"""``elemta plugin new NAME --lang python|go|node``: each skeleton passes its own generated
test, and all three run side by side in a real ``elemta serve`` through SMTP.
"""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

import pytest

from tests.integration.langs.conftest import GO_TOOLS, plugin_row, run_step
from tests.support.server import ELEMTA, REPO, ServerProcess
from tests.support.services import require_binary

LANGS = ("python", "go", "node")
TOOLS = {"python": (), "go": GO_TOOLS, "node": ("node", "npm")}
#: The generated test of each language, run in the skeleton's directory.
OWN_TEST = {
    "python": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plugin.py"],
    "go": ["bash", "build.sh", "test"],
    "node": ["npm", "test"],
}
SUMMARY = {"python": ["2 passed"], "go": ["\nok  \t"], "node": ["# pass 2", "# fail 0"]}


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One skeleton per language, written (and built) by the real CLI."""
    root = tmp_path_factory.mktemp("scaffold")
    out: dict[str, Path] = {}
    for lang in LANGS:
        for tool in TOOLS[lang]:
            require_binary(tool)
        target = root / f"hello_{lang}"
        r = run_step([*ELEMTA, "plugin", "new", f"hello_{lang}", "--lang", lang, "--dir",
                      str(target)], root, f"elemta plugin new --lang {lang}",
                     env={"PYTHONPATH": str(REPO)})
        assert f"wrote {lang} plugin hello_{lang} in {target}" in r.stdout
        assert (target / "catalog.toml").is_file()
        out[lang] = target
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_the_skeleton_passes_its_own_test(skeletons: dict[str, Path], lang: str) -> None:
    r = run_step(OWN_TEST[lang], skeletons[lang], f"the generated {lang} test",
                 env={"PYTHONPATH": str(REPO)})
    for line in SUMMARY[lang]:
        assert line in r.stdout, r.stdout[-2000:]


def test_the_three_skeletons_run_in_a_real_server(elemta_server,
                                                 skeletons: dict[str, Path]) -> None:
    srv: ServerProcess = elemta_server(
        plugins={"include": [str(skeletons[lang] / "catalog.toml") for lang in LANGS]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("alice@example.org")[0] == 250  # each plugin says CONTINUE
        s.rset()
        assert s.mail("mallory@blocked.example") == \
            (550, b"5.7.1 Sender domain is not accepted here")
    rows = {lang: plugin_row(srv, f"hello_{lang}") for lang in LANGS}
    assert {r["state"] for r in rows.values()} == {"ready"}
    assert {r["mode"] for r in rows.values()} == {"stream"}
    # Equal priorities run by name: hello_go refuses first; the others saw one call each.
    assert [rows[lang]["calls"] for lang in LANGS] == [1, 2, 1]

