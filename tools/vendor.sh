#!/usr/bin/env bash
# Makes src/rust/vendor.tar.xz and src/rust/binding/Cargo.lock: the sources
# of every crate the binding builds, pinned by the workspace's Cargo.lock, so
# that the package tarball installs offline (`cargo build --offline
# --locked`, see ../configure). Called by the Makefile before `R CMD build`.
#
# Kept small: crates that no Linux or macOS build compiles (Windows, WASI,
# UEFI) keep only their Cargo.toml and an empty lib.rs, which is all cargo
# reads of them; every crate loses its tests, benches, examples and docs.
# The checksum files then list no files (cargo checks the package checksum
# against Cargo.lock still).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
out="$PWD/src/rust/vendor.tar.xz"
targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The binding outside the workspace, as the package tarball holds it.
cp Cargo.lock src/rust/binding/Cargo.lock
mkdir -p "$work/rust"
cp -r src/rust/binding "$work/rust/binding"
mkdir -p "$work/rust/core"
cp -r src/rust/core/Cargo.toml src/rust/core/src "$work/rust/core/"
cd "$work/rust/binding"
cargo vendor --locked --versioned-dirs "$work/vendor" >/dev/null 2>"$work/vendor.log" || {
  cat "$work/vendor.log" >&2
  exit 1
}

target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
cargo tree --locked --offline -e normal,build "${target_args[@]}" --prefix none -f '{p}' |
  grep -v ' (/' | sed -n 's/^\([^ ]*\) v\([^ ]*\).*/\1-\2/p' |
  sort -u >"$work/built.txt"

cd "$work/vendor"
stubbed=0
for crate in *; do
  if ! grep -qxF "$crate" "$work/built.txt"; then
    find "$crate" -mindepth 1 -maxdepth 1 ! -name Cargo.toml ! -name .cargo-checksum.json -exec rm -rf {} +
    mkdir -p "$crate/src"
    : >"$crate/src/lib.rs"
    stubbed=$((stubbed + 1))
  fi
  rm -rf "$crate/tests" "$crate/benches" "$crate/examples" "$crate/docs" "$crate/doc"
  package=$(sed -n 's/.*"package":"\([0-9a-f]*\)".*/\1/p' "$crate/.cargo-checksum.json")
  printf '{"files":{},"package":"%s"}' "$package" >"$crate/.cargo-checksum.json"
done
cd "$work"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - vendor | xz -6 -T1 >"$out"
echo "tools/vendor.sh: $(ls vendor | wc -l) crates ($stubbed stubbed, not built on Linux or macOS), $(du -h "$out" | cut -f1) in src/rust/vendor.tar.xz"
