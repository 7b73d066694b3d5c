#!/usr/bin/env python3
"""Writes docs/config-reference.md from the config dataclasses themselves (core sections and
every installed plugin's section), so the reference cannot drift from the code.

    .venv/bin/python scripts/gen-config-doc.py [--check]
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import typing
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from elemta_core.config.loader import CORE_SECTIONS
from elemta_core.plugins.manager import discover

OUT = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        args = [a for a in get_args(tp) if a is not type(None)]
        return " | ".join(type_name(a) for a in args) + (" (optional)" if len(args) < len(get_args(tp)) else "")
    if origin is list:
        return f"list of {type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"table of {type_name(get_args(tp)[1])}"
    if origin is typing.Literal:
        return " / ".join(f'"{a}"' for a in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " / ".join(f'"{m.value}"' for m in tp)
    if dataclasses.is_dataclass(tp):
        return f"table ({tp.__name__})"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


def default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        v = f.default
    elif f.default_factory is not dataclasses.MISSING:
        v = f.default_factory()
    else:
        return "(required)"
    if isinstance(v, enum.Enum):
        v = v.value
    if dataclasses.is_dataclass(v):
        return "(table)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v).replace("'", '"') if v is not None else "(unset)"


def section(name: str, cls: type, owner: str) -> list[str]:
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(") else ""
    out = [f"## `[{name}]`", "", f"Read by: {owner}." + (f" {doc}" if doc else ""), "",
           "| key | type | default |", "|---|---|---|"]
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or not f.init:
            continue
        out.append(f"| `{f.name}` | {type_name(hints[f.name])} | `{default(f)}` |")
    nested = [(f.name, hints[f.name]) for f in dataclasses.fields(cls)
              if dataclasses.is_dataclass(hints[f.name])]
    out.append("")
    for key, sub in nested:
        out += section(f"{name}.{key}", sub, owner)
    return out


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from the config dataclasses by `scripts/gen-config-doc.py`; do not edit.",
             "Every key is checked at start-up: an unknown key, a wrong type or a bad value stops",
             "Elemta with one line naming the file, the key and the fix (`elemta config check -c FILE`).",
             ""]
    for name, cls in CORE_SECTIONS.items():
        lines += section(name, cls, "the core")
    owners: dict[str, list[str]] = {}
    schemas: dict[str, type] = {}
    for pname, pcls in sorted(discover().items()):
        if pcls.config_section and pcls.Config is not None:
            owners.setdefault(pcls.config_section, []).append(f"`{pname}`")
            schemas[pcls.config_section] = pcls.Config
    for sname in sorted(schemas):
        if sname.startswith("testplugins"):
            continue
        lines += section(sname, schemas[sname], "plugins " + ", ".join(owners[sname]))
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")
