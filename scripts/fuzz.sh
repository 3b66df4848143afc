#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 15), starting from
# the committed seed corpus (fuzz/corpus/<target>, captured from real pika
# traffic by scripts/fuzz-capture.py, plus what earlier runs found).
# Needs the nightly toolchain. Under CI (CI=true) a missing nightly is
# installed with rustup, and the run fails if that fails. Elsewhere,
# without nightly, the fuzz crate is only compiled (cargo check, stable) so
# that it cannot stop building unseen, and fuzzing is skipped (exit 0).
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
        echo "fuzz: no nightly toolchain under CI: installing it"
        if ! rustup toolchain install nightly --profile minimal; then
            echo "fuzz: no nightly toolchain and rustup could not install it; CI must fuzz" >&2
            exit 1
        fi
    else
        echo "fuzz: no nightly toolchain (rustup toolchain install nightly): checking that the fuzz targets compile, not fuzzing"
        CARGO_TARGET_DIR="$PWD/target/fuzz-check" cargo check --manifest-path fuzz/Cargo.toml --bins
        exit 0
    fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || cargo install cargo-fuzz >/dev/null
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frames table topic definitions management connection mqtt)
fi
cd fuzz
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t for ${seconds}s"
    # -rss_limit_mb bounds memory per input; a crash, a leak of the limit or
    # a slow input (-timeout) fails the run and leaves the input in artifacts/.
    log="artifacts/$t.log"
    rc=0
    # Inputs that once failed (fuzz/regressions/<target>) run first, every time.
    dirs=("corpus/$t")
    if [ -d "regressions/$t" ]; then dirs+=("regressions/$t"); fi
    cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$log" || true
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $t failed (exit $rc):" >&2
        grep -E -A20 "panicked|ERROR: libFuzzer|SUMMARY|error(\[|:)" "$log" | head -60 >&2 || tail -40 "$log" >&2
        ls "artifacts/$t" >&2 || true
        exit 1
    fi
done
echo "fuzz: all targets ran ${seconds}s without a finding"
