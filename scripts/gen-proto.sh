#!/usr/bin/env bash
# Generates the Python gRPC stubs from proto/ (never hand-edited, never committed).
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
  # Generated modules import each other as top-level packages; make them relative to $out.
  find "$out" -name '*.py' -print0 | xargs -0 sed -i -E \
      's/^from (elemta|grpc_health|plugin)(\.[a-z0-9_.]+)? import /from \.\.\.\1\2 import /'
  find "$out" -type d -exec touch {}/__init__.py \;
done
