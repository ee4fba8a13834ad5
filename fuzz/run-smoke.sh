#!/usr/bin/env bash
# Bounded fuzz run of the SRQL parser (`srql_lang::parse`): exits non-zero on a crash.
#
#   fuzz/run-smoke.sh [SECONDS]        # default 30, or $FUZZ_SECONDS
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets rustc accept the -Z flags that
# cargo-fuzz passes. The sanitizer defaults to `none` because srql-lang forbids `unsafe`,
# so AddressSanitizer would only slow the run; set FUZZ_SANITIZER=address to use it.
# First run: ~1 min to install cargo-fuzz and ~1-1.5 min to build the target.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-${FUZZ_SECONDS:-30}}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Seed with the parser's test corpus so the run starts from valid and near-valid queries.
mkdir -p corpus/parse
cp ../crates/srql-lang/tests/corpus/ok/*.srql ../crates/srql-lang/tests/corpus/err/*.srql corpus/parse/

# -max_len above the default 8192-byte query limit, so the length check is reached too.
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" --jobs 1 parse -- \
    -max_total_time="$seconds" -max_len=9000 -dict=srql.dict -print_final_stats=1
