#!/usr/bin/env bash
# Fuzzes parse -> lower -> passes -> compile for SECONDS (default 600), seeded with the bundled
# architectures, the golden test inputs and, when present, the random networks of
# tests/differential.rs (`cargo test --release --test differential generator` writes them).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1
# enables the sanitizer flags it passes.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/compile
cp ../architectures/*.incep ../tests/filetests/*/*.incep ../tests/user/*.incep corpus/compile/
if compgen -G "../target/differential/generated/*.incep" > /dev/null; then
  cp ../target/differential/generated/*.incep corpus/compile/
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run compile corpus/compile -- -max_total_time="${1:-600}" -max_len=65536 -timeout=20 -rss_limit_mb=4096
