#!/usr/bin/env bash
# Builds Canonical's C raft library 0.22.1 (the cowsql/raft line) from Debian
# trixie's source package, pinned by sha256, into third_party/raft/{include,lib}.
# Not bookworm's libraft-dev 0.15: it loses entries on restart and lacks Raft
# safety fixes (see shared notes, "raft-library.md"). The system's apt sources
# are never touched: apt runs with a private configuration under the cache dir.
# Build dependencies: autoconf automake libtool pkg-config libuv1-dev liblz4-dev dpkg-dev.
# Does nothing when the pinned build is already in place.
#
# Three patches:
# - to the installed header: raft.h checks struct layouts with
#   `static_assert(sizeof(struct {...}) ...)`, which is not valid C++ (types may
#   not be defined in sizeof). The check is made a no-op when compiled as C++;
#   the layouts themselves are untouched (upstream fixed this after 0.22.1).
# - to src/legacy.c: when a snapshot install from the leader is waiting for a
#   local snapshot to finish, takeSnapshotCb clears the pending request before
#   reading it and then dereferences NULL (a segfault we hit in
#   shard_replica_test). The two statements are put in the right order.
# - to src/byte.c: the log's checksum, byteCrc32, computed one byte per table
#   lookup, was 8-9% of all CPU while ingesting into RF 3 shards. It is renamed
#   byteCrc32Bytewise and scripts/raft-crc32-slicing.c appended, which computes
#   the same CRC eight bytes per step (log segments stay compatible) and checks
#   itself against the byte-wise version when the library loads.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

VERSION=0.22.1-1
BUILD_ID="$VERSION+cxx-header+pending-snapshot-fix+crc-slicing"
DEST=$PWD/third_party/raft
STAMP="$DEST/.version"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$BUILD_ID" ] && [ -f "$DEST/lib/libraft.so" ]; then
  exit 0
fi

CACHE="${RAFTMETRICS_CACHE:-$HOME/.cache/raftmetrics}/raft"
APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$CACHE/src"
# The Debian mirror this machine already uses (deb822 "URIs:" or one-line "deb" entries).
MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $2 !~ /security/ {print $2; exit}' \
         /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$APT/sources.list"
APT_OPTS=(-o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache")

cd "$CACHE/src"
if [ ! -f raft_0.22.1.orig.tar.gz ]; then
  echo "fetch-raft: downloading raft $VERSION source from Debian trixie"
  apt-get "${APT_OPTS[@]}" update -qq
  apt-get "${APT_OPTS[@]}" source --download-only "raft=$VERSION" >/dev/null 2>&1
fi
sha256sum -c --quiet <<SUMS
570c1f241fa14d1ecbf91399c132d4e6f1027fc9d305f60be279a620f1f133ac  raft_0.22.1-1.debian.tar.xz
b666536d53588e1dd0a512803a6a2fc34bb18424b7ac7fe1ee5fc9e19e9dfe0a  raft_0.22.1-1.dsc
7e45b6f24f3671c9bfd5b146814493f87cb2e560712bd469c1f5969a4b94291a  raft_0.22.1.orig.tar.gz
SUMS
rm -rf "raft-0.22.1"
dpkg-source -x --no-check "raft_$VERSION.dsc" raft-0.22.1 >/dev/null
cd raft-0.22.1
perl -0pi -e 's/(\n\s*)r->legacy\.snapshot_pending = NULL;\n(\s*)persist = r->legacy\.snapshot_pending;/$1persist = r->legacy.snapshot_pending;\n$2r->legacy.snapshot_pending = NULL;/' src/legacy.c
grep -Pzq 'persist = r->legacy\.snapshot_pending;\n\s*r->legacy\.snapshot_pending = NULL;\n\s*rv = legacyPersistSnapshotStart' src/legacy.c ||
  { echo "fetch-raft: could not patch src/legacy.c" >&2; exit 1; }
perl -pi -e 's/^unsigned byteCrc32\(/static unsigned byteCrc32Bytewise(/' src/byte.c
grep -q '^static unsigned byteCrc32Bytewise(' src/byte.c ||
  { echo "fetch-raft: could not patch src/byte.c" >&2; exit 1; }
cat "$ROOT/scripts/raft-crc32-slicing.c" >> src/byte.c
# Built inside the source tree: an out-of-tree build would pick up bookworm's
# /usr/include/raft.h (0.15). Assertions stay on (--enable-debug is not used,
# but NDEBUG is not defined either), so a broken invariant aborts instead of
# letting a group stall silently.
autoreconf -i >/dev/null 2>&1
CFLAGS="-O2 -g" ./configure --prefix="$DEST" --disable-example --disable-benchmark --enable-uv >/dev/null
make -j"$(nproc)" >/dev/null
rm -rf "$DEST"
make install >/dev/null
perl -0pi -e 's/#if defined\(RAFT__LEGACY_no\)\n#define RAFT__ASSERT_COMPATIBILITY/#if defined(RAFT__LEGACY_no) || defined(__cplusplus)\n#define RAFT__ASSERT_COMPATIBILITY/' \
  "$DEST/include/raft.h"
grep -q 'defined(RAFT__LEGACY_no) || defined(__cplusplus)' "$DEST/include/raft.h" ||
  { echo "fetch-raft: could not patch raft.h for C++" >&2; exit 1; }
echo "$BUILD_ID" > "$STAMP"
echo "fetch-raft: raft $VERSION in $DEST"
