#!/usr/bin/env bash
# Smoke-runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 10) each, starting from
# the committed seed corpora. Exits non-zero if any target crashes, leaks or fails to build.
#
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh            # all targets
#   scripts/fuzz-smoke.sh mbms_open                  # only the named targets
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. New corpus entries land next to the seeds in
# fuzz/corpus/<target>/ (git-ignored, only seed-* files are tracked); crashing inputs land in
# fuzz/artifacts/<target>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-10}"
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=(mikey_decode mbms_open srtp_unprotect srtp_roundtrip lanes_differential keyfile_parse capture_frame capture_file recv_service ua_xml dcf_open)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

logdir="$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")"
summary=()
failed=0

for target in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$target"
    mkdir -p "$corpus"
    log="$logdir/$target.log"
    echo "fuzz-smoke: $target for ${seconds}s (log: $log)" >&2
    status=0
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 | tee "$log" || status=$?

    # libFuzzer's last status line, e.g. "#123456 DONE cov: 812 ft: 2301 corp: 240/9Kb ... exec/s: 6000".
    stats="$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)"
    execs="$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$stats")"
    cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")"
    ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")"
    corp="$(sed -nE 's/.* corp: ([^ ]+).*/\1/p' <<<"$stats")"
    runs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")"
    if [[ $status -eq 0 ]]; then
        result="ok"
    else
        failed=1
        artifact="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)"
        panic_msg="$(grep -A1 -m1 'panicked at' "$log" | tail -n 1 || true)"
        result="FAILED (exit $status${artifact:+, input: $artifact}${panic_msg:+, panic: $panic_msg})"
    fi
    summary+=("$target: $result; runs=${runs:-?} exec/s=${execs:-?} cov=${cov:-?} ft=${ft:-?} corp=${corp:-?} in ${seconds}s")
done

echo
for line in "${summary[@]}"; do
    echo "fuzz-smoke: $line"
done
exit "$failed"
