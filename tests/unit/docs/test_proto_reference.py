"""scripts/gen-proto-doc.py: the committed protocol reference is what proto/ renders to, and
the renderer shows services, streams, maps, nested types and comments."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto_doc", REPO / "scripts/gen-proto-doc.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_reference_is_current() -> None:
    gen = load_generator()
    committed = (REPO / "docs/plugin-proto-reference.md").read_text()
    assert committed == gen.generate(), "docs/plugin-proto-reference.md is stale: make proto-doc"


def test_the_reference_covers_every_hook_and_context_field() -> None:
    text = (REPO / "docs/plugin-proto-reference.md").read_text()
    from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb

    for value in pb.Hook.DESCRIPTOR.values:
        assert f"| `{value.name}` | {value.number} |" in text
    for field in pb.Context.DESCRIPTOR.fields:
        assert f"| `{field.name}` | {field.number} |" in text
    assert "| `Hooks` | stream [HookRequest](#elemta.plugin.v1.HookRequest) | stream " in text


def test_rendering_of_a_small_proto(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo/demo.proto").write_text(textwrap.dedent("""\
        // The demo file.
        //
        // Second paragraph.
        syntax = "proto3";
        package demo;
        import "google/protobuf/empty.proto";

        // Says things.
        service Talk {
          // Many at once.
          rpc Chat(stream Line) returns (stream Line);
          rpc Ping(google.protobuf.Empty) returns (Line);
        }

        // One line | with a pipe.
        message Line {
          string text = 1;  // what was said
          map<string, int32> counts = 2;
          repeated Kind kinds = 3;
          enum Kind {
            KIND_UNSPECIFIED = 0;
            KIND_LOUD = 1;  // shouted
          }
          message Inner { bool ok = 1; }
          Inner inner = 4;
        }
        """))
    gen = load_generator()
    out = gen.generate(tmp_path)
    assert "The demo file.\n\nSecond paragraph.\n" in out
    assert "### service Talk\n\nSays things.\n" in out
    assert "| `Chat` | stream [Line](#demo.Line) | stream [Line](#demo.Line) | Many at once. |" in out
    assert "| `Ping` | `google.protobuf.Empty` | [Line](#demo.Line) |  |" in out
    assert "One line \\| with a pipe." not in out  # a message comment is a paragraph, not a cell
    assert "One line | with a pipe." in out
    assert "| `text` | 1 | string | what was said |" in out
    assert "| `counts` | 2 | map<string, int32> |  |" in out
    assert "| `kinds` | 3 | repeated [Kind](#demo.Line.Kind) |  |" in out
    assert "| `KIND_LOUD` | 1 | shouted |" in out
    assert '<a id="demo.Line.Inner"></a>\n\n### Line.Inner\n' in out
    assert "LineCountsEntry" not in out  # map entries are not messages of their own
