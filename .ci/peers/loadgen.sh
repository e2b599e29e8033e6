#!/usr/bin/env bash
# Peer check of the load generator: does `isobench bench` keep up with oha and wrk?
#
# Starts one target pinned to the last CPU (the release isobench-server when it builds and
# answers, else nginx-light answering `return 200` as a stand-in), then runs isobench bench,
# oha and wrk in turn against it, each pinned to the other CPU(s), with the same connection
# count and duration, and prints each one's req/s and the ratios. Bounded: every command runs
# under `timeout`, and the target is stopped on any exit.
#
# Usage: .ci/peers/loadgen.sh            (env: DURATION=5 seconds, CONNECTIONS=50, ROUNDS=3,
#                                          TARGET_PATH=/health)
set -euo pipefail

DURATION="${DURATION:-5}"          # seconds, for all three tools
CONNECTIONS="${CONNECTIONS:-50}"
TARGET_PATH="${TARGET_PATH:-/health}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
WRK="${WRK:-$(command -v wrk || true)}"
ROUNDS="${ROUNDS:-3}"             # interleaved rounds (isobench, oha, wrk, isobench, …)
BOUND=$((DURATION + 30))           # hard limit per tool run, seconds

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work=""
target_pid=""

cleanup() {
  if [[ -n "$target_pid" ]] && kill -0 "$target_pid" 2>/dev/null; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  [[ -n "$work" ]] && rm -rf "$work"
  return 0
}
trap cleanup EXIT INT TERM

cpus="$(nproc)"
last=$((cpus - 1))
if ((cpus > 2)); then generator_cpus="0-$((last - 1))"; generator_count=$last
else generator_cpus="0"; generator_count=1; fi
# wrk gets as many threads as isobench starts (one per generator CPU, at least two: see
# load::plan::MIN_THREADS); oha runs with its own default (one per physical core).
wrk_threads=$((generator_count > 2 ? generator_count : 2))

echo "== building release binaries"
timeout 1200 cargo build --release --locked --bin isobench >/dev/null
isobench="$root/target/release/isobench"
server=""
if timeout 1200 cargo build --release --locked --no-default-features --bin isobench-server \
     >/dev/null 2>&1; then
  server="$root/target/release/isobench-server"
fi

# Scratch space inside target/, made after the build: shared /tmp may be swept by others.
mkdir -p "$root/target"
work="$(mktemp -d "$root/target/loadgen.XXXXXX")"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # url: wait up to 5 s for a 200
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --max-time 1 "$1"; then return 0; fi
    sleep 0.05
  done
  return 1
}

url=""
target=""
if [[ -n "$server" ]]; then
  taskset -c "$last" "$server" --bind 127.0.0.1 --port 0 >"$work/server.log" 2>&1 &
  target_pid=$!
  for _ in $(seq 1 100); do
    addr="$(sed -n 's/.*listening on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/server.log" | head -1)"
    [[ -n "$addr" ]] && break
    sleep 0.05
  done
  if [[ -n "${addr:-}" ]] && wait_for "http://$addr$TARGET_PATH"; then
    url="http://$addr$TARGET_PATH"
    target="isobench-server (release)"
  else
    echo "isobench-server did not come up; falling back to nginx" >&2
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
    target_pid=""
  fi
fi
if [[ -z "$url" ]]; then
  port="$(free_port)"
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
CONF
  taskset -c "$last" nginx -c "$work/nginx.conf" -p "$work" >"$work/nginx.out" 2>&1 &
  target_pid=$!
  wait_for "http://127.0.0.1:$port$TARGET_PATH"
  url="http://127.0.0.1:$port$TARGET_PATH"
  target="nginx-light (stand-in)"
fi

echo "== target: $target at $url, pinned to CPU $last; generators pinned to CPU(s) $generator_cpus"
echo "== $CONNECTIONS connections, ${DURATION}s each, $ROUNDS interleaved round(s); the machine may be"
echo "== shared, so single figures are noisy: compare medians, and CPU per request (generator cost)"

# Each tool: prints "<req/s> <requests> <cpu seconds>"; CPU from GNU time (user + system).
timed() { /usr/bin/time -f "%U %S" -o "$work/time" "$@"; }
cpu_s() { awk '{ printf "%.3f", $1 + $2 }' "$work/time"; }

run_isobench() {
  timed timeout "$BOUND" taskset -c "$generator_cpus" "$isobench" bench --url "$url" \
    -c "$CONNECTIONS" -d "${DURATION}s" --warmup 0s --no-progress \
    --output "$work/isobench.json" >"$work/isobench.txt"
  local load='.environments[0].rounds[0].scenarios[0].load'
  echo "$(jq "$load.throughput_rps" "$work/isobench.json") \
$(jq "$load.requests_sent" "$work/isobench.json") $(cpu_s) \
bottleneck=$(jq "$load.generator.bottleneck" "$work/isobench.json")"
}
run_oha() {
  timed timeout "$BOUND" taskset -c "$generator_cpus" "$OHA" --no-tui --output-format json \
    -c "$CONNECTIONS" -z "${DURATION}s" "$url" >"$work/oha.json"
  echo "$(jq '.summary.requestsPerSec' "$work/oha.json") \
$(jq '[.statusCodeDistribution[]] | add' "$work/oha.json") $(cpu_s)"
}
run_wrk() {
  timed timeout "$BOUND" taskset -c "$generator_cpus" "$WRK" -t "$wrk_threads" \
    -c "$CONNECTIONS" -d "${DURATION}s" "$url" >"$work/wrk.txt"
  echo "$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt") \
$(awk '/requests in/ {print $1}' "$work/wrk.txt") $(cpu_s)"
}

tools=(isobench)
[[ -x "$OHA" ]] && tools+=(oha) || echo "oha: not installed ($OHA)"
[[ -n "$WRK" ]] && tools+=(wrk) || echo "wrk: not installed"

for round in $(seq 1 "$ROUNDS"); do
  for tool in "${tools[@]}"; do
    read -r rps requests cpu extra < <("run_$tool")
    echo "$rps" >>"$work/$tool.rps"
    echo "$requests $cpu" >>"$work/$tool.cpu"
    printf 'round %d  %-8s %10.0f req/s  %8d requests  %6.3f CPU s  %6.1f CPU µs/request %s\n' \
      "$round" "$tool" "$rps" "$requests" "$cpu" \
      "$(awk -v c="$cpu" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? c * 1e6 / n : 0) }')" \
      "${extra:-}"
  done
done

median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
per_request() { awk '{ c += $2; n += $1 } END { printf "%.1f", (n > 0 ? c * 1e6 / n : 0) }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== medians over $ROUNDS round(s)"
for tool in "${tools[@]}"; do
  printf '%-8s %10.0f req/s   %6s CPU µs/request\n' "$tool" "$(median "$work/$tool.rps")" \
    "$(per_request "$work/$tool.cpu")"
done
mine="$(median "$work/isobench.rps")"
if [[ -f "$work/oha.rps" ]]; then
  echo "isobench / oha = $(ratio "$mine" "$(median "$work/oha.rps")") req/s (goal >= 1.0)"
fi
if [[ -f "$work/wrk.rps" ]]; then
  echo "isobench / wrk = $(ratio "$mine" "$(median "$work/wrk.rps")") req/s (goal >= 0.9)"
fi
exit 0
