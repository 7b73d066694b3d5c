#!/usr/bin/env bash
# Builds go_filter offline from Debian's Go packages (no Go modules, no network):
#   apt-get install golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev \
#                   golang-goprotobuf-dev protobuf-compiler
# Generates the Go stubs of proto/elemta/plugin/v1/plugin.proto into build/gopath, builds
# build/go_filter in GOPATH mode, and writes catalog.toml pinning the binary's sha256.
#   ./build.sh          build (and pin)
#   ./build.sh test     build, then run the Go unit tests
# PROTO_DIR overrides where the .proto files are (default: the repository's proto/).
set -euo pipefail
cd "$(dirname "$0")"
NAME=go_filter
PROTO_DIR=${PROTO_DIR:-../../proto}
GOCODE=/usr/share/gocode

missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v protoc-gen-go >/dev/null || missing+=(golang-goprotobuf-dev)
[ -d "$GOCODE/src/github.com/hashicorp/go-plugin" ] || missing+=(golang-github-hashicorp-go-plugin-dev)
[ -d "$GOCODE/src/google.golang.org/grpc" ] || missing+=(golang-google-grpc-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "build.sh: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 1
fi
[ -f "$PROTO_DIR/elemta/plugin/v1/plugin.proto" ] || {
  echo "build.sh: $PROTO_DIR/elemta/plugin/v1/plugin.proto not found; set PROTO_DIR" >&2
  exit 1
}

mkdir -p build/gopath/src
protoc -I "$PROTO_DIR" --go_out=plugins=grpc,paths=source_relative:build/gopath/src \
  "$PROTO_DIR/elemta/plugin/v1/plugin.proto"

export GO111MODULE=off GOPATH="$PWD/build/gopath:$GOCODE"
[ -n "${HOME:-}" ] || export GOCACHE="$PWD/build/gocache"
go build -trimpath -o "build/$NAME.tmp" .
mv -f "build/$NAME.tmp" "build/$NAME"   # atomic: a running plugin keeps its old binary
chmod 755 "build/$NAME"

digest=$(sha256sum "build/$NAME" | cut -d' ' -f1)
sed "s/@SHA256@/$digest/" catalog.toml.in > catalog.toml.tmp
mv -f catalog.toml.tmp catalog.toml
echo "built build/$NAME (sha256 $digest); catalog.toml pins it"

if [ "${1:-}" = test ]; then
  go test -count=1 .
fi
