#!/usr/bin/env bash
# Generates the Python gRPC stubs from proto/ (never hand-edited, never committed) into the
# server (elemta_core/external/proto_gen) and the Python SDK (elemta_plugin/_proto).
# Usage: scripts/gen-proto.sh [PYTHON]  (a python with grpcio-tools; default .venv/bin/python)
set -euo pipefail
PY=${1:-.venv/bin/python}
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
protos=(proto/**/*.proto)
[ ${#protos[@]} -eq 0 ] && exit 0
for out in elemta_core/external/proto_gen external-plugins/sdk/python/elemta_plugin/_proto; do
  [ -d "$(dirname "$out")" ] || continue
  rm -rf "$out"; mkdir -p "$out"
  "$PY" -m grpc_tools.protoc -Iproto --python_out="$out" --pyi_out="$out" \
      --grpc_python_out="$out" "${protos[@]}"
  # Generated modules import each other as top-level packages; make them relative to $out
  # (the depth of each file decides how many dots lead back to $out).
  while IFS= read -r -d '' f; do
    rel=${f#"$out"/}
    depth=$(tr -cd / <<<"$rel" | wc -c)
    dots=$(printf '.%.0s' $(seq 0 "$depth"))
    sed -i -E "s/^from (elemta|grpc_health|plugin)((\.[a-z0-9_]+)*) import /from ${dots}\1\2 import /" "$f"
  done < <(find "$out" -name '*.py' -print0)
  find "$out" -type d -exec touch {}/__init__.py \;
done
