#!/usr/bin/env bash
# Data-plane benchmark: shared/bench/peers.sh (direct upstream, plain Envoy, LiteLLM) with
# infergate added as the gateway under test, all fronting the same fake OpenAI upstream.
#   bash bench/peers.sh              quick: 1 round of 5 s phases, direct + plain Envoy + infergate
#   FULL=1 bash bench/peers.sh       2 rounds of 20 s phases (about 10 minutes)
#   TARGETS="direct envoy litellm"   add LiteLLM (pip installs it: a few minutes)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers="$root/../shared/bench/peers.sh"
[ -f "$peers" ] || { echo "shared/bench/peers.sh not found next to the repo" >&2; exit 1; }
cargo build --release -q -p infergate --manifest-path "$root/Cargo.toml"
export ENVOY_BIN=${ENVOY_BIN:-$root/.venv/bin/envoy}
export BENCH_KEY=${BENCH_KEY:-sk-bench-7f3a9c1e5b2d4f60a8c3e1d9b7f5a2c4}
[ "${FULL:-0}" = 1 ] || export QUICK=1
export TARGETS=${TARGETS:-direct envoy}
export GATEWAY_LABEL=infergate
export GATEWAY_URL=http://127.0.0.1:28090
# Envoy with one worker, like the plain-Envoy peer; everything pinned by peers.sh to one core.
export GATEWAY_CMD="$root/target/release/infergate run $root/bench/peers-gateway --envoy-concurrency 1 \
  --ads-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --extproc-addr 127.0.0.1:0 --extproc-admin-addr 127.0.0.1:0 \
  --ratelimit-addr 127.0.0.1:0 --ratelimit-admin-addr 127.0.0.1:0 \
  --envoy-admin-addr 127.0.0.1:29911 --listener-address 127.0.0.1"
exec bash "$peers"
