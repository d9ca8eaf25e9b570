#!/usr/bin/env bash
# Runs each fuzz target of the core crate briefly (FUZZ_SECONDS, default 15)
# on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz use -Z flags).
# Installs cargo-fuzz from crates.io if missing. Called by `make test`.
set -euo pipefail
cd "$(dirname "$0")/../src/rust/core"
seconds="${FUZZ_SECONDS:-15}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "tools/fuzz.sh: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
sanitizer=()
# AddressSanitizer needs nightly-only -Zsanitizer; fall back to none if the
# toolchain refuses it.
if ! cargo fuzz build -O frames >/dev/null 2>&1; then
  echo "tools/fuzz.sh: building with the address sanitizer failed; using --sanitizer none"
  sanitizer=(--sanitizer none)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
  echo "tools/fuzz.sh: fuzzing $target for ${seconds}s"
  if ! cargo fuzz run -O "${sanitizer[@]}" "$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "tools/fuzz.sh: $target failed (artifacts in src/rust/core/fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || true
done
echo "tools/fuzz.sh: all targets ran clean"
