"""The committed example catalogs are valid and their pins current (else: make checksums)."""

from __future__ import annotations

from pathlib import Path

import pytest

from elemta_core.external.catalog import read_catalog
from elemta_core.external.security import verify

EXAMPLES = Path(__file__).resolve().parents[3] / "external-plugins"
CATALOGS = sorted(EXAMPLES.glob("*/catalog.toml"))


def test_the_python_examples_have_a_catalog_and_a_readme() -> None:
    names = {p.parent.name for p in CATALOGS}
    assert {"python_filter", "greylist", "allowdeny"} <= names
    for name in ("python_filter", "greylist", "allowdeny"):
        assert (EXAMPLES / name / "README.md").is_file(), name


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parent.name)
def test_pins_are_current(path: Path) -> None:
    for entry in read_catalog(path):
        assert entry.name == path.parent.name
        verify(entry)  # RefusedError names the file: run `make checksums`


def test_pin_rewrites_a_stale_digest(tmp_path: Path) -> None:
    from elemta_core.cli.external import pin_catalog

    (tmp_path / "plugin.py").write_text("x = 1\n")
    cat = tmp_path / "catalog.toml"
    cat.write_text('[[plugins.external]]\nname = "t"\ncommand = ["{python}", "plugin.py"]\n'
                   f'sha256 = {{ "plugin.py" = "{"0" * 64}" }}  # pinned\n')
    assert pin_catalog(cat) == ["plugin.py"]
    assert "# pinned" in cat.read_text()
    verify(read_catalog(cat)[0])
    assert pin_catalog(cat) == []
