#!/usr/bin/env bash
# Build C-Raft 0.22.1 (the cowsql-line "raft", Debian 13 "trixie" source
# package raft 0.22.1-*) from Debian's source package, with our patches from
# scripts/raft-patches/*.patch, into the project-private prefix .deps/raft:
#
#   .deps/raft/include/raft.h, .deps/raft/include/raft/{fixture,uv}.h
#   .deps/raft/lib/libraft.a   (static, -fPIC -O2 -g, uv backend, fixture, lz4)
#   .deps/raft/src/*.{c,h}     the patched sources, for the fuzz build, which
#                              compiles C-Raft's wire decoders itself with
#                              fuzzer instrumentation (tests/fuzz/fuzz_raft_wire.c)
#
# The system's apt configuration is never touched: a private sources list,
# lists directory and cache live under .deps/apt-src/. The trixie InRelease
# file is verified with /usr/share/keyrings/debian-archive-keyring.gpg (the
# bookworm package debian-archive-keyring >= 2023.3+deb12u1 carries the
# trixie release keys); the source files are then checked by apt against the
# hashes in the signed Sources index. The .dsc's own inline signature is an
# uploader's key (debian-keyring, not installed), so dpkg-source only warns
# about it; the InRelease -> Sources -> file-hash chain is what we rely on.
#
# Idempotent: .deps/raft/.hora-stamp holds a hash of this script and the
# patches; when it matches, the script exits at once. Otherwise it rebuilds
# from scratch (partial work dirs of an earlier failed run are removed).
#
# Environment (for tests and debugging only):
#   HORA_RAFT_UNPATCHED=1  build without scripts/raft-patches (to show that
#                          tests/sim/test_raft_snapshot_race crashes without
#                          our patch); the stamp records it, so the next run
#                          without it rebuilds the patched library.
#   HORA_RAFT_FORCE=1      rebuild even if the stamp matches.
set -euo pipefail

RAFT_VERSION=0.22.1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
deps=$root/.deps
prefix=$deps/raft
aptdir=$deps/apt-src
work=$deps/raft-build
stamp=$prefix/.hora-stamp
patchdir=$here/raft-patches
unpatched=${HORA_RAFT_UNPATCHED:-0}

compute_stamp() {
  {
    echo "raft $RAFT_VERSION unpatched=$unpatched"
    sha256sum "$here/build-raft.sh"
    if [ "$unpatched" != 1 ] && [ -d "$patchdir" ]; then
      find "$patchdir" -maxdepth 1 -name '*.patch' -type f -print0 |
        LC_ALL=C sort -z | xargs -0 -r sha256sum | sed "s|$patchdir/||"
    fi
  } | sha256sum | cut -d' ' -f1
}

is_current() {
  [ "${HORA_RAFT_FORCE:-0}" != 1 ] &&
    [ -f "$stamp" ] && [ -f "$prefix/lib/libraft.a" ] &&
    [ -f "$prefix/include/raft.h" ] && [ -f "$prefix/include/raft/fixture.h" ] &&
    [ -f "$prefix/include/raft/uv.h" ] && [ -f "$prefix/src/uv_encoding.c" ] &&
    [ "$(cat "$stamp")" = "$want" ]
}

want=$(compute_stamp)
if is_current; then
  exit 0
fi

mkdir -p "$deps"
# One build at a time (install-deps.sh and a developer may race).
exec 9>"$deps/.build-raft.lock"
flock 9
if is_current; then
  exit 0
fi

start=$SECONDS
label="C-Raft $RAFT_VERSION"
[ "$unpatched" = 1 ] && label="$label (UNPATCHED)"
printf 'build-raft: building %s into .deps/raft ... ' "$label"

rm -rf "$work"
mkdir -p "$work"
log=$work/build.log
: >"$log"

fail() {
  echo "FAILED"
  echo "build-raft: $*" >&2
  echo "build-raft: last lines of $log:" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}

for tool in apt-get dpkg-source autoreconf make cc patch pkg-config; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "missing $tool (run scripts/install-deps.sh)"
done
pkg-config --exists libuv || fail "libuv1-dev missing (run scripts/install-deps.sh)"
pkg-config --exists liblz4 || fail "liblz4-dev missing (run scripts/install-deps.sh)"

# ---- 1. fetch the source package with a private apt setup -----------------
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || fail "$keyring missing (apt-get install debian-archive-keyring)"
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" \
  "$aptdir/sources.list.d" "$aptdir/preferences.d" "$aptdir/pool"
echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian trixie main" \
  >"$aptdir/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$aptdir/sources.list"
  -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
  -o "Dir::Etc::Preferences=$aptdir/preferences"
  -o "Dir::Etc::PreferencesParts=$aptdir/preferences.d"
  -o "Dir::State::Lists=$aptdir/lists"
  -o "Dir::Cache=$aptdir/cache"
  -o "Dir::Cache::Archives=$aptdir/cache/archives"
  -o "Acquire::Languages=none"
  -o "Acquire::AllowInsecureRepositories=false"
  -o "Acquire::AllowDowngradeToInsecureRepositories=false"
  -o "APT::Get::Only-Source=true"
  -q
)
# apt drops privileges to _apt to download; let it write to our dirs.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
  chown _apt "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/pool"
fi

# A failed update (e.g. offline) is fine when verified lists are already here.
if ! apt-get "${apt_opts[@]}" update >>"$log" 2>&1; then
  ls "$aptdir"/lists/*_InRelease >/dev/null 2>&1 ||
    fail "apt-get update of the private trixie deb-src list failed"
  echo "build-raft: apt-get update failed, using the lists already present" >>"$log"
fi
if grep -E '^(W|E): .*(GPG|signature|not signed|NO_PUBKEY)' "$log" >/dev/null; then
  fail "the trixie Release file could not be verified with $keyring"
fi

srcver=$(apt-cache "${apt_opts[@]}" showsrc raft 2>>"$log" |
  awk '/^Package: raft$/ {p=1} p && /^Version:/ {print $2; exit}')
case "$srcver" in
  "$RAFT_VERSION"-*) ;;
  *) fail "trixie's source package raft is '$srcver', not $RAFT_VERSION-*" ;;
esac

# The pool dir keeps the downloads: apt re-checks their hashes and skips them.
(cd "$aptdir/pool" && apt-get "${apt_opts[@]}" source --download-only "raft=$srcver") \
  >>"$log" 2>&1 || fail "apt-get source raft=$srcver failed"
dsc=$aptdir/pool/raft_${srcver#*:}.dsc
[ -f "$dsc" ] || fail "$dsc not downloaded"

src=$work/raft-$RAFT_VERSION
dpkg-source -x "$dsc" "$src" >>"$log" 2>&1 || fail "dpkg-source -x failed"

# ---- 2. our patches --------------------------------------------------------
npatch=0
if [ "$unpatched" != 1 ] && [ -d "$patchdir" ]; then
  while IFS= read -r -d '' p; do
    echo "== patch $(basename "$p")" >>"$log"
    patch -d "$src" -p1 --batch --forward <"$p" >>"$log" 2>&1 ||
      fail "patch $(basename "$p") does not apply"
    npatch=$((npatch + 1))
  done < <(find "$patchdir" -maxdepth 1 -name '*.patch' -type f -print0 | LC_ALL=C sort -z)
fi

# ---- 3. build and install into a staging dir, then swap it in ---------------
(
  cd "$src"
  autoreconf -i
  ./configure --prefix="$prefix" --enable-static --disable-shared --with-pic \
    --enable-uv --enable-fixture --with-lz4 \
    --disable-example --disable-benchmark --disable-dependency-tracking \
    CFLAGS="-fPIC -O2 -g"
  make -j"$(nproc 2>/dev/null || echo 2)"
  make install DESTDIR="$work/stage"
) >>"$log" 2>&1 || fail "build failed"

staged=$work/stage$prefix
mkdir -p "$staged/src"
cp "$src"/src/*.c "$src"/src/*.h "$staged/src/" || fail "cannot keep the sources"
for f in lib/libraft.a include/raft.h include/raft/fixture.h include/raft/uv.h \
  src/uv_encoding.c; do
  [ -f "$staged/$f" ] || fail "build did not produce $f"
done
rm -rf "$prefix"
mv "$staged" "$prefix"
echo "$want" >"$stamp"
cp "$log" "$prefix/build.log"
rm -rf "$work"

echo "done ($srcver, $npatch patch(es), $((SECONDS - start)) s)"
