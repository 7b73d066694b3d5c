#!/usr/bin/env python3
"""Render the plugin protocol's .proto files as a markdown reference.

protoc (grpc_tools' bundled one) compiles proto/ into a FileDescriptorSet with source info;
this walks the descriptors and writes every service, message, field and enum with the
comments written next to them in the .proto, so the reference cannot drift from the wire
format. Usage (``make proto-doc``)::

    .venv/bin/python scripts/gen-proto-doc.py [--out docs/plugin-proto-reference.md] [--check]

``--check`` writes nothing and exits 1 when the file is not what the .proto files produce.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from google.protobuf import descriptor_pb2 as d
from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[1]
PROTO_DIR = REPO / "proto"
DEFAULT_OUT = REPO / "docs" / "plugin-proto-reference.md"
#: The application protocol first, then go-plugin's infrastructure services.
ORDER = ["elemta/plugin/v1/plugin.proto", "grpc_health/v1/health.proto",
         "plugin/grpc_controller.proto", "plugin/grpc_stdio.proto"]

# Field numbers in descriptor.proto, for SourceCodeInfo paths.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MSG_FIELD, MSG_NESTED, MSG_ENUM = 2, 3, 4
ENUM_VALUE, SERVICE_METHOD = 2, 2

SCALARS = {
    d.FieldDescriptorProto.TYPE_DOUBLE: "double", d.FieldDescriptorProto.TYPE_FLOAT: "float",
    d.FieldDescriptorProto.TYPE_INT64: "int64", d.FieldDescriptorProto.TYPE_UINT64: "uint64",
    d.FieldDescriptorProto.TYPE_INT32: "int32", d.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    d.FieldDescriptorProto.TYPE_FIXED32: "fixed32", d.FieldDescriptorProto.TYPE_BOOL: "bool",
    d.FieldDescriptorProto.TYPE_STRING: "string", d.FieldDescriptorProto.TYPE_BYTES: "bytes",
    d.FieldDescriptorProto.TYPE_UINT32: "uint32", d.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    d.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64", d.FieldDescriptorProto.TYPE_SINT32: "sint32",
    d.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def compile_protos(proto_dir: Path, files: list[str]) -> d.FileDescriptorSet:
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", "--include_source_info",
                          f"--descriptor_set_out={out}", *files])
        if rc != 0:
            raise SystemExit(f"protoc failed (exit {rc}) on {', '.join(files)}")
        return d.FileDescriptorSet.FromString(out.read_bytes())


def paragraphs(comment: str) -> str:
    """A comment's lines joined into paragraphs (a blank comment line starts a new one)."""
    paras = [" ".join(line.strip() for line in block.splitlines())
             for block in comment.strip().split("\n\n")]
    return "\n\n".join(p for p in paras if p)


class Comments:
    """Comments by SourceCodeInfo path: what is written above a declaration, else after it."""

    def __init__(self, f: d.FileDescriptorProto) -> None:
        self.by_path: dict[tuple[int, ...], str] = {}
        self.header: list[str] = []
        for loc in f.source_code_info.location:
            text = loc.leading_comments or loc.trailing_comments
            if text:
                self.by_path[tuple(loc.path)] = paragraphs(text)
            if tuple(loc.path) == (12,):  # `syntax`: the file's header comments sit above it
                self.header = [paragraphs(c) for c in [*loc.leading_detached_comments,
                                                       loc.leading_comments] if c.strip()]

    def get(self, *path: int) -> str:
        return self.by_path.get(path, "")


def cell(text: str) -> str:
    return text.replace("\n\n", " ").replace("|", "\\|")




class Renderer:
    def __init__(self, files: list[d.FileDescriptorProto]) -> None:
        self.files = files
        self.known = {f".{f.package}.{e.name}" for f in files for e in f.enum_type}
        self.maps: dict[str, tuple[d.FieldDescriptorProto, d.FieldDescriptorProto]] = {}
        for f in files:  # map<K, V> fields are nested *Entry messages: remember them
            for m, full in self._messages(f.message_type, f".{f.package}"):
                self.known.add(full)
                self.known.update(f"{full}.{e.name}" for e in m.enum_type)
                if m.options.map_entry:
                    self.maps[full] = (m.field[0], m.field[1])

    def _messages(self, msgs: Iterable[d.DescriptorProto], prefix: str
                  ) -> Iterator[tuple[d.DescriptorProto, str]]:
        for m in msgs:
            full = f"{prefix}.{m.name}"
            yield m, full
            yield from self._messages(m.nested_type, full)

    def type_link(self, name: str) -> str:
        """A link to a type rendered here; a type from elsewhere (google.protobuf) by name."""
        full = name.lstrip(".")
        return f"[{full.rsplit('.', 1)[-1]}](#{full})" if name in self.known else f"`{full}`"

    def field_type(self, fd: d.FieldDescriptorProto) -> str:
        if fd.type_name in self.maps:
            k, v = self.maps[fd.type_name]
            return f"map<{self.field_type(k)}, {self.field_type(v)}>"
        if fd.type_name:
            return self.type_link(fd.type_name)
        return SCALARS[fd.type]

    def render(self) -> str:
        out = ["# Plugin protocol reference", "",
               ("<!-- Generated by scripts/gen-proto-doc.py from proto/ (make proto-doc); do not "
                "edit by hand. -->"), "",
               ("Every service, message and enum an external plugin speaks, with the comments of "
                "the .proto files. The author guide is [plugins.md](plugins.md)."), ""]
        for f in self.files:
            out += [f"- [`{f.name}`](#{f.name}) (package `{f.package}`)"]
        out.append("")
        for f in self.files:
            out += self.render_file(f)
        return "\n".join(out).rstrip() + "\n"

    def render_file(self, f: d.FileDescriptorProto) -> list[str]:
        c = Comments(f)
        out = [f'<a id="{f.name}"></a>', "", f"## `{f.name}`", "",
               f"Package `{f.package}`." + (f" Imports {', '.join(f'`{i}`' for i in f.dependency)}."
                                            if f.dependency else ""), ""]
        out += [p for text in c.header for p in (text, "")]
        for si, svc in enumerate(f.service):
            out += [f'<a id="{f.package}.{svc.name}"></a>', "", f"### service {svc.name}", ""]
            if text := c.get(FILE_SERVICE, si):
                out += [text, ""]
            out += ["| method | request | response | |", "|---|---|---|---|"]
            for mi, m in enumerate(svc.method):
                req = ("stream " if m.client_streaming else "") + self.type_link(m.input_type)
                resp = ("stream " if m.server_streaming else "") + self.type_link(m.output_type)
                out.append(f"| `{m.name}` | {req} | {resp} | "
                           f"{cell(c.get(FILE_SERVICE, si, SERVICE_METHOD, mi))} |")
            out.append("")
        for ei, e in enumerate(f.enum_type):
            out += self.render_enum(e, f".{f.package}.{e.name}", c, (FILE_ENUM, ei))
        for mi, m in enumerate(f.message_type):
            out += self.render_message(m, f".{f.package}.{m.name}", c, (FILE_MESSAGE, mi))
        return out

    def render_enum(self, e: d.EnumDescriptorProto, full: str, c: Comments,
                    path: tuple[int, ...]) -> list[str]:
        out = [f'<a id="{full[1:]}"></a>', "", f"### enum {full.rsplit('.', 1)[-1]}", ""]
        if text := c.get(*path):
            out += [text, ""]
        out += ["| name | number | |", "|---|---|---|"]
        for vi, v in enumerate(e.value):
            out.append(f"| `{v.name}` | {v.number} | {cell(c.get(*path, ENUM_VALUE, vi))} |")
        return [*out, ""]

    def render_message(self, m: d.DescriptorProto, full: str, c: Comments,
                       path: tuple[int, ...]) -> list[str]:
        if m.options.map_entry:
            return []
        local = full[1:].removeprefix(self._package_of(full) + ".")  # Outer.Inner if nested
        out = [f'<a id="{full[1:]}"></a>', "", f"### {local}", ""]
        if text := c.get(*path):
            out += [text, ""]
        if m.field:
            out += ["| field | number | type | |", "|---|---|---|---|"]
            for fi, fd in enumerate(m.field):
                kind = self.field_type(fd)
                if fd.label == d.FieldDescriptorProto.LABEL_REPEATED and not kind.startswith("map<"):
                    kind = f"repeated {kind}"
                out.append(f"| `{fd.name}` | {fd.number} | {cell(kind)} | "
                           f"{cell(c.get(*path, MSG_FIELD, fi))} |")
        else:
            out.append("(no fields)")
        out.append("")
        for ei, e in enumerate(m.enum_type):
            out += self.render_enum(e, f"{full}.{e.name}", c, (*path, MSG_ENUM, ei))
        for ni, n in enumerate(m.nested_type):
            out += self.render_message(n, f"{full}.{n.name}", c, (*path, MSG_NESTED, ni))
        return out

    def _package_of(self, full: str) -> str:
        for f in self.files:
            if full[1:].startswith(f.package + "."):
                return str(f.package)
        return ""


def generate(proto_dir: Path = PROTO_DIR) -> str:
    present = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto"))
    files = [p for p in ORDER if p in present] + [p for p in present if p not in ORDER]
    fds = compile_protos(proto_dir, files)
    by_name = {f.name: f for f in fds.file}
    text: str = Renderer([by_name[n] for n in files]).render()
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--proto-dir", type=Path, default=PROTO_DIR)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if --out differs from what the .proto files produce")
    args = ap.parse_args(argv)
    text = generate(args.proto_dir)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run make proto-doc", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
