#!/usr/bin/env bash
# Download throughput (issue 7): the same files sent by `mbms-send download` protected (DCF
# under MTKs, CBC and CTR) and unprotected (--no-protection), side by side on this machine,
# with 1 and 2 cores for the protection (RAYON_NUM_THREADS). The FLUTE session goes to a
# multicast group on lo, unpaced (--fast). Prints one line per run and the ratios.
#
#   scripts/bench-download.sh                 # 20 files, 200 MB in all
#   FILES=10 MB_EACH=50 scripts/bench-download.sh
#   SECONDS_ONLY=1 scripts/bench-download.sh  # CI: small files, debug build, a few seconds
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

files="${FILES:-20}"
mb_each="${MB_EACH:-10}"
profile=release
if [[ -n "${SECONDS_ONLY:-}" ]]; then
    files=4
    mb_each=1
    profile=debug
fi
if [[ "$profile" == release ]]; then
    cargo build --release --quiet -p mbms-sender --bin mbms-send
else
    cargo build --quiet -p mbms-sender --bin mbms-send
fi
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
send="$target_dir/$profile/mbms-send"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/outbox"
for i in $(seq 1 "$files"); do
    head -c "$((mb_each * 1000000))" /dev/urandom >"$work/outbox/file-$i.bin"
done
"$send" keys new --state-dir "$work/state" --service bench --out "$work/bench.msk" >/dev/null

run() { # $1 label, $2 threads, rest: extra flags
    local label="$1" threads="$2"
    shift 2
    RAYON_NUM_THREADS="$threads" "$send" download --service bench --state-dir "$work/state" \
        --dir "$work/outbox" --group 239.255.0.9 --interface lo --fast "$@" |
        python3 -c '
import json, sys
label, threads = sys.argv[1], sys.argv[2]
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
total = r["protect_seconds"] + r["send_seconds"]
mbs = r["plaintext_bytes"] / total / 1e6
print(json.dumps({"run": label, "threads": int(threads), "MB": r["plaintext_bytes"] / 1e6,
    "protect_s": round(r["protect_seconds"], 3), "send_s": round(r["send_seconds"], 3),
    "packets": r["packets"], "MB_per_s": round(mbs, 1)}))' "$label" "$threads"
}

echo "== $files files x $mb_each MB, $profile build, $(nproc) CPUs" >&2
out="$work/results.jsonl"
for threads in 1 2; do
    run unprotected "$threads" --no-protection | tee -a "$out"
    run dcf-cbc "$threads" --method cbc | tee -a "$out"
    run dcf-ctr "$threads" --method ctr | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = {r["threads"]: r["MB_per_s"] for r in rows if r["run"] == "unprotected"}
for r in rows:
    if r["run"] != "unprotected":
        print(f'{r["run"]} on {r["threads"]} core(s): {r["MB_per_s"]} MB/s, '
              f'{r["MB_per_s"] / base[r["threads"]]:.2f} x unprotected ({base[r["threads"]]} MB/s)')
PY
