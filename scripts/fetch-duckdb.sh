#!/usr/bin/env bash
# Fetches the official DuckDB 1.4.4 build through the npm registry, pinned by
# version and sha256: the C header from the `duckdb` package, libduckdb.so from
# `@duckdb/node-bindings-linux-x64`. Result: third_party/duckdb/{include,lib}.
# Does nothing when the pinned version is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.4.4
HEADERS_PKG="duckdb@${VERSION}"
HEADERS_SHA=5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed
LIB_PKG="@duckdb/node-bindings-linux-x64@${VERSION}-r.4"
LIB_SHA=732fac4dc6b8f198870b9c4bb6ddf13544466daca00ad28ba2f1d80de5d7aa4b

DEST=third_party/duckdb
STAMP="$DEST/.version"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION-$HEADERS_SHA-$LIB_SHA" ] \
   && [ -f "$DEST/lib/libduckdb.so" ] && [ -f "$DEST/include/duckdb.h" ]; then
  exit 0
fi

CACHE="${RAFTMETRICS_CACHE:-$HOME/.cache/raftmetrics}/npm"
mkdir -p "$CACHE"
fetch() {  # fetch <package spec> <expected sha256> -> prints the tarball path
  local spec=$1 sha=$2 file
  file=$(ls "$CACHE"/*.tgz 2>/dev/null | while read -r f; do
           [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sha" ] && echo "$f"; done | head -1)
  if [ -z "$file" ]; then
    file="$CACHE/$(cd "$CACHE" && npm pack --silent "$spec" | tail -1)"
  fi
  local got; got=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "fetch-duckdb: checksum mismatch for $spec: got $got, want $sha" >&2
    rm -f "$file"; exit 1
  fi
  echo "$file"
}

echo "fetch-duckdb: fetching DuckDB $VERSION (pinned)"
headers=$(fetch "$HEADERS_PKG" "$HEADERS_SHA")
lib=$(fetch "$LIB_PKG" "$LIB_SHA")

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar -xzf "$headers" -C "$tmp" package/src/duckdb/src/include/duckdb.h
mkdir -p "$tmp/lib" && tar -xzf "$lib" -C "$tmp/lib" package/libduckdb.so
rm -rf "$DEST"; mkdir -p "$DEST/include" "$DEST/lib"
cp "$tmp/package/src/duckdb/src/include/duckdb.h" "$DEST/include/"
cp "$tmp/lib/package/libduckdb.so" "$DEST/lib/"
echo "$VERSION-$HEADERS_SHA-$LIB_SHA" > "$STAMP"
echo "fetch-duckdb: DuckDB $VERSION in $DEST"
