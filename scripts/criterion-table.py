#!/usr/bin/env python3
"""Prints criterion results as packets (or messages) per second.

    scripts/criterion-table.py srtp/          # every bench whose ID starts with the prefix

Reads target/criterion/**/new/{benchmark,estimates}.json: mean point estimate (ns per iteration)
and the throughput declared by the bench (Elements, or Bytes divided by the packet size that
the bench ID names as its last `x`-separated number plus the 12-byte RTP header).
"""
import glob
import json
import os
import sys

prefix = sys.argv[1] if len(sys.argv) > 1 else ""
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "criterion")
rows = []
for bench in glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True):
    b = json.load(open(bench))
    full_id = b["full_id"]
    if not full_id.startswith(prefix):
        continue
    est = json.load(open(os.path.join(os.path.dirname(bench), "estimates.json")))
    ns = est["mean"]["point_estimate"]
    tp = b.get("throughput") or {}
    if "Elements" in tp:
        per_iter = tp["Elements"]
    elif "Bytes" in tp:
        payload = int(full_id.rsplit("/", 1)[1].split("x")[-1])
        per_iter = tp["Bytes"] // (payload + 12)
    else:
        per_iter = 1
    threads = 1
    last = full_id.rsplit("/", 1)[1]
    if "x" in last:
        threads = int(last.split("x")[0])
    rate = per_iter / (ns / 1e9)
    rows.append((full_id, ns / per_iter, rate, rate / threads))
rows.sort()
print(f"{'benchmark':<36} {'ns/item':>9} {'items/s':>12} {'items/s/core':>13}")
for full_id, ns, rate, per_core in rows:
    print(f"{full_id:<36} {ns:9.1f} {rate:12,.0f} {per_core:13,.0f}")
