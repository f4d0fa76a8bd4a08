#!/usr/bin/env bash
# Runs every check the project has: what CI runs (.ci/run calls this script).
# Installs the Debian packages the tests need when they are missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v tshark >/dev/null 2>&1 || need+=(tshark)
[ -f /usr/include/srtp2/srtp.h ] || need+=(libsrtp2-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# The BM-SC tests use curl's own HTTP Digest client for interop.
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
  echo "== installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== PostgreSQL for the key store and BM-SC tests"
eval "$(scripts/postgres-for-tests.sh)"
export MBMS_REQUIRE_POSTGRES=1

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked --quiet
echo "== fuzz targets compile"
cargo check --manifest-path fuzz/Cargo.toml --locked --quiet
echo "== main job (demo) runs"
demo_dir="$(mktemp -d)"
(cd "$demo_dir" && cargo run --quiet --locked --manifest-path "$OLDPWD/Cargo.toml" -p mbms-sender -- demo --duration 1 >/dev/null)
rm -rf "$demo_dir"
cargo run --quiet --locked -p mbms-core --example mikey-demo >/dev/null
echo "== SRTP-vs-libsrtp, sender, receiver, BM-SC, download and CPU-floor bench scripts run (one short round each)"
DURATION=0.2 PAYLOADS=172 scripts/bench-vs-libsrtp.sh >/dev/null
SECONDS_ONLY=1 scripts/bench-sender.sh >/dev/null
SECONDS_ONLY=1 scripts/bench-receiver.sh >/dev/null
SECONDS_ONLY=1 scripts/bench-bmsc.sh >/dev/null
SECONDS_ONLY=1 scripts/bench-download.sh >/dev/null
SECONDS_ONLY=1 scripts/cpu-floor.sh >/dev/null
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo's own last line is the doc-test summary).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
