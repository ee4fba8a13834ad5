#!/usr/bin/env bash
# Bounded fuzz runs, exits non-zero on a crash:
#   parse: the SRQL parser (`srql_lang::parse`);
#   otlp:  the OTLP receivers' pre-scan, protobuf and JSON decoding, and mapping.
#
#   fuzz/run-smoke.sh [SECONDS]        # in all, split between the targets; default 30,
#                                      # or $FUZZ_SECONDS
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets rustc accept the -Z flags that
# cargo-fuzz passes. The sanitizer defaults to `none` because our crates forbid `unsafe`,
# so AddressSanitizer would only slow the run; set FUZZ_SANITIZER=address to use it.
# First run: ~1 min to install cargo-fuzz and a few minutes to build the targets.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-${FUZZ_SECONDS:-30}}"
each=$(( (seconds + 1) / 2 ))
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Seed with the query corpus so the run starts from valid and near-valid queries.
mkdir -p corpus/parse corpus/otlp
cp ../tests/queries/*.srql ../tests/queries/err/*.srql corpus/parse/
cp seeds/otlp/* corpus/otlp/

# -max_len above the default 8192-byte query limit, so the length check is reached too.
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" --jobs 1 parse -- \
    -max_total_time="$each" -max_len=9000 -dict=srql.dict -print_final_stats=1
# Bodies up to 64 KiB: enough for nesting past the depth limit and many spans.
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" --jobs 1 otlp -- \
    -max_total_time="$each" -max_len=65536 -dict=otlp.dict -print_final_stats=1
