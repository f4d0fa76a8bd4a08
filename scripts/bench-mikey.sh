#!/usr/bin/env bash
# Runs the MIKEY criterion benches (benches/benches/mikey.rs) and prints messages/s, messages/s
# per core and the 2-thread / 1-thread ratio of the batch benches, from criterion's
# target/criterion/**/new/{estimates,benchmark}.json (mean point estimate, ns per iteration).
#
#   scripts/bench-mikey.sh                      # every mikey/ bench
#   scripts/bench-mikey.sh 'mikey/mtk_'         # only benches whose ID matches the filter(s)
#   NO_RUN=1 scripts/bench-mikey.sh             # only print the table of the last results
#   WAIT_IDLE=300 scripts/bench-mikey.sh        # first wait up to 300 s for the CPUs to be idle
#
# Only results written by this run are listed (unless NO_RUN=1). Targets checked:
# MSK >= 400k messages/s per core, MTK >= 1M messages/s per core, 2-thread batch >= 1.8x.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

filters=("$@")
if [[ ${#filters[@]} -eq 0 ]]; then
    filters=('^mikey/')
fi

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

# Busy share (%) of all CPUs over 2 s, from /proc/stat: other load skews the 2-thread figures.
cpu_busy() {
    local a b c d e f g h t1 i1 t2 i2
    read -r _ a b c d e f g h _ </proc/stat
    t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
    sleep 2
    read -r _ a b c d e f g h _ </proc/stat
    t2=$((a + b + c + d + e + f + g + h)) i2=$((d + e))
    echo $((100 - 100 * (i2 - i1) / (t2 - t1)))
}

if [[ -n "${NO_RUN:-}" ]]; then
    since=0
else
    cargo bench -p mbms-benches --bench mikey --no-run
    busy="$(cpu_busy)"
    # WAIT_IDLE=<seconds>: first wait (at most that long) for the other load to go away.
    deadline=$((SECONDS + ${WAIT_IDLE:-0}))
    while ((busy > 10 && SECONDS < deadline)); do
        busy="$(cpu_busy)"
    done
    if ((busy > 10)); then
        echo "warning: CPUs already ${busy}% busy before the run; figures (2-thread ones above all) will be noisy" >&2
    fi
    since="$(date +%s)"
    cargo bench -p mbms-benches --bench mikey -- "${filters[@]}"
    busy="$(cpu_busy)"
    if ((busy > 10)); then
        echo "warning: CPUs ${busy}% busy right after the run; consider re-running" >&2
    fi
fi

python3 - "$target_dir/criterion" "$since" <<'EOF'
import glob, json, os, re, sys

root, since = sys.argv[1], float(sys.argv[2])
rows = {}
for est_path in glob.glob(os.path.join(root, "**", "new", "estimates.json"), recursive=True):
    if os.path.getmtime(est_path) < since:
        continue  # stale: not written by this run
    meta_path = os.path.join(os.path.dirname(est_path), "benchmark.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        with open(est_path) as f:
            est = json.load(f)
    except (OSError, ValueError):
        continue
    full_id = meta.get("full_id", "")
    if not full_id.startswith("mikey/"):
        continue
    thr = meta.get("throughput") or {}
    elements = thr.get("Elements", 1)
    mean = est["mean"]
    rows[full_id] = {
        "ns": mean["point_estimate"],
        "lo": mean["confidence_interval"]["lower_bound"],
        "hi": mean["confidence_interval"]["upper_bound"],
        "elements": elements,
    }

if not rows:
    sys.exit("no mikey/ results written by this run under " + root)

def threads(full_id):
    m = re.search(r"/(\d+)x\d+$", full_id)
    return int(m.group(1)) if m else 1

print()
print(f"{'benchmark':<30} {'mean/iter':>12} {'±CI':>7} {'msgs/s':>12} {'msgs/s/core':>12} {'ns/msg':>8}")
for full_id in sorted(rows):
    r = rows[full_id]
    per_s = r["elements"] * 1e9 / r["ns"]
    t = threads(full_id)
    ci = (r["hi"] - r["lo"]) / 2 / r["ns"] * 100
    ns = r["ns"]
    mean = f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.1f} ns"
    print(f"{full_id:<30} {mean:>12} {ci:>6.1f}% {per_s:>12,.0f} {per_s / t:>12,.0f} "
          f"{r['ns'] / r['elements']:>8.1f}")

print()
for kind in ("msk_seal_batch", "mtk_seal_batch"):
    one = [k for k in rows if k.startswith(f"mikey/{kind}/1x")]
    for k1 in one:
        k2 = k1.replace(f"/{kind}/1x", f"/{kind}/2x")
        if k2 in rows:
            ratio = rows[k1]["ns"] / rows[k2]["ns"]
            verdict = "ok" if ratio >= 1.8 else "below 1.8x target"
            print(f"{kind}: 2 threads / 1 thread = {ratio:.2f}x ({verdict})")

targets = {"mikey/msk_seal/single": 400e3, "mikey/mtk_seal/single": 1e6}
for full_id, goal in targets.items():
    if full_id in rows:
        r = rows[full_id]
        per_s = r["elements"] * 1e9 / r["ns"]
        verdict = "ok" if per_s >= goal else "below target"
        print(f"{full_id}: {per_s:,.0f} msgs/s per core vs target {goal:,.0f} ({verdict})")
EOF
