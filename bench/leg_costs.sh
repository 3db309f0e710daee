#!/usr/bin/env bash
# What each ext_proc leg and message costs: starts the benchmark gateway (bench/peers-gateway),
# copies its Envoy config into a static Envoy with the legs cut down per variant (leg_costs.py),
# and loads each variant with oha at 32 connections (CONC) against the same extproc, printing
# req/s, p50 latency and CPU µs per request of that Envoy and of the infergate process.
# Pins like shared/bench/peers.sh: gateway and Envoy on core 0, nginx and oha on core 1.
#   bash bench/leg_costs.sh                          every variant, 5 s each
#   VARIANTS="full noext" DURATION=10s bash bench/leg_costs.sh
#   CONC=1 bash bench/leg_costs.sh                   one request at a time: latency, no batching
#   ROUNDS=3 bash bench/leg_costs.sh                 the variants in turn, 3 times, then medians
#     (this VM's speed drifts: the same variant measured 2,700 to 3,700 req/s in consecutive
#     runs, so compare variants only within interleaved rounds)
# Needs a prior `bash bench/peers.sh` (it sets up nginx's fake upstream and oha in /tmp/peerbench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${WORK:-/tmp/peerbench}
run=$work/run
oha=$work/cargo/bin/oha
[ -x "$oha" ] && [ -f "$run/nginx.conf" ] || { echo "run bash bench/peers.sh once first" >&2; exit 1; }
variants=${VARIANTS:-full noup noup_noresp noup_noresp_nobody noext}
envoy=$("$root/.venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
out=$(mktemp -d)
cleanup() { kill -- -"${gw:-0}" 2>/dev/null || true; pkill -f "nginx -c $run/nginx.conf" || true; [ -n "${KEEP:-}" ] || rm -rf "$out"; }
trap cleanup EXIT
cargo build --release -q -p infergate --manifest-path "$root/Cargo.toml"

wait_for_200() {
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H 'x-ai-eg-model: gpt-4o-mini' -d @"$run/req.json" "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  echo "no 200 from $1" >&2; return 1
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

listening() { ss -ltn | grep -q "127.0.0.1:$1 "; }
pkill -f "nginx -c $run/nginx.conf" || true
for _ in $(seq 100); do listening 28000 || break; sleep 0.1; done
listening 28000 && { echo "something else listens on 127.0.0.1:28000" >&2; exit 1; }
setsid taskset -c 1 nginx -c "$run/nginx.conf" -e "$run/nginx-error.log" -g 'daemon off;' >"$out/nginx.log" 2>&1 &
for _ in $(seq 100); do listening 28000 && break; sleep 0.1; done
ENVOY_BIN=$root/.venv/bin/envoy BENCH_KEY=${BENCH_KEY:-sk-bench-7f3a9c1e5b2d4f60a8c3e1d9b7f5a2c4} \
  setsid taskset -c 0 "$root/target/release/infergate" run "$root/bench/peers-gateway" --envoy-concurrency 1 \
  --ads-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --extproc-addr 127.0.0.1:0 --extproc-admin-addr 127.0.0.1:0 \
  --ratelimit-addr 127.0.0.1:0 --ratelimit-admin-addr 127.0.0.1:0 \
  --envoy-admin-addr 127.0.0.1:29911 --listener-address 127.0.0.1 >"$out/gateway.log" 2>&1 &
gw=$!
wait_for_200 http://127.0.0.1:28090/v1/chat/completions
curl -s 'http://127.0.0.1:29911/config_dump?include_eds' >"$out/dump.json"

printf '| variant | req/s | p50 ms | ext_proc messages/req | Envoy µs/req | infergate µs/req |\n|---|---:|---:|---:|---:|---:|\n'
for round in $(seq "${ROUNDS:-1}"); do
for v in $variants; do
  "$root/.venv/bin/python" "$root/bench/leg_costs.py" "$out/dump.json" "$v" >"$out/$v.yaml"
  setsid taskset -c 0 "$envoy" -c "$out/$v.yaml" --concurrency 1 --base-id 77 -l warning >"$out/$v.log" 2>&1 &
  ep=$!
  wait_for_200 http://127.0.0.1:28091/v1/chat/completions
  e0=$(cpu_ticks $ep); g0=$(cpu_ticks $gw)
  # The model header lets the `noext` variant route without the router leg.
  taskset -c 1 "$oha" -z "${DURATION:-5s}" -c "${CONC:-32}" --no-tui -m POST -H 'content-type: application/json' \
    -H 'x-ai-eg-model: gpt-4o-mini' -D "$run/req.json" http://127.0.0.1:28091/v1/chat/completions \
    --output-format json >"$out/$v.json"
  e1=$(cpu_ticks $ep); g1=$(cpu_ticks $gw)
  msgs=$(curl -s localhost:29912/stats | awk -F': ' '/ext_proc.stream_msgs_sent/ {n += $2} END {print n + 0}')
  kill $ep; wait $ep 2>/dev/null || true
  python3 - "$out/$v.json" "$v" $((e1 - e0)) $((g1 - g0)) "$(getconf CLK_TCK)" "$msgs" "$out/rows.tsv" <<'PY'
import json, sys
o = json.load(open(sys.argv[1])); v = sys.argv[2]
n = sum(o["statusCodeDistribution"].values()); tick = 1e6 / int(sys.argv[5])
bad = {k: c for k, c in o["statusCodeDistribution"].items() if k != "200"}
# The messages include the few of the readiness probe: a rounding error at thousands of requests.
p50 = o["latencyPercentiles"]["p50"] * 1000
row = [o['summary']['requestsPerSec'], p50, int(sys.argv[6]) / n, int(sys.argv[3]) * tick / n,
       int(sys.argv[4]) * tick / n]
print(f"| {v} | {row[0]:.0f}{' ' + str(bad) if bad else ''} | {row[1]:.2f} "
      f"| {row[2]:.1f} | {row[3]:.0f} | {row[4]:.0f} |")
with open(sys.argv[7], "a") as rows:
    rows.write(v + "\t" + "\t".join(str(x) for x in row) + "\n")
PY
done
done
if [ "${ROUNDS:-1}" -gt 1 ]; then
  printf '\nMedians of %s rounds:\n\n' "$ROUNDS"
  python3 - "$out/rows.tsv" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    v, *xs = line.rstrip("\n").split("\t")
    by.setdefault(v, []).append([float(x) for x in xs])
print("| variant | req/s | p50 ms | ext_proc messages/req | Envoy µs/req | infergate µs/req |")
print("|---|---:|---:|---:|---:|---:|")
for v, rows in by.items():
    m = [statistics.median(col) for col in zip(*rows)]
    print(f"| {v} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.1f} | {m[3]:.0f} | {m[4]:.0f} |")
PY
fi
