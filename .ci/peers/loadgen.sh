#!/usr/bin/env bash
# Peer check of the load generator: does `isobench bench` keep up with oha and wrk?
#
# Starts one target pinned to the last CPU (the release isobench-server when it builds and
# answers, else nginx-light answering `return 200` as a stand-in), then runs isobench bench,
# oha and wrk in turn against it, each pinned to the other CPU(s), with the same connection
# count and duration, and prints each one's req/s and the ratios. Bounded: every command runs
# under `timeout`, and the target is stopped on any exit.
#
# Usage: .ci/peers/loadgen.sh            (env: DURATION=5 seconds, CONNECTIONS=50, TARGET_PATH=/health)
set -euo pipefail

DURATION="${DURATION:-5}"          # seconds, for all three tools
CONNECTIONS="${CONNECTIONS:-50}"
TARGET_PATH="${TARGET_PATH:-/health}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
WRK="${WRK:-$(command -v wrk || true)}"
BOUND=$((DURATION + 30))           # hard limit per tool run, seconds

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work="$(mktemp -d)"
target_pid=""

cleanup() {
  if [[ -n "$target_pid" ]] && kill -0 "$target_pid" 2>/dev/null; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

cpus="$(nproc)"
last=$((cpus - 1))
if ((cpus > 1)); then generator_cpus="0-$((last - 1))"; generator_count=$last
else generator_cpus="0"; generator_count=1; fi

echo "== building release binaries"
timeout 1200 cargo build --release --locked --bin isobench >/dev/null
isobench="$root/target/release/isobench"
server=""
if timeout 1200 cargo build --release --locked --no-default-features --bin isobench-server \
     >/dev/null 2>&1; then
  server="$root/target/release/isobench-server"
fi

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
echo "== $CONNECTIONS connections, ${DURATION}s each; the machine may be shared, so treat small differences as noise"

timeout "$BOUND" taskset -c "$generator_cpus" "$isobench" bench --url "$url" \
  -c "$CONNECTIONS" -d "${DURATION}s" --warmup 0s --no-progress --output "$work/isobench.json" \
  >"$work/isobench.txt"
isobench_rps="$(jq '.environments[0].rounds[0].scenarios[0].load.throughput_rps' "$work/isobench.json")"
bottleneck="$(jq '.environments[0].rounds[0].scenarios[0].load.generator.bottleneck' "$work/isobench.json")"
echo "isobench: $isobench_rps req/s (generator bottleneck: $bottleneck)"

oha_rps=""
if [[ -x "$OHA" ]]; then
  timeout "$BOUND" taskset -c "$generator_cpus" "$OHA" --no-tui --output-format json \
    -c "$CONNECTIONS" -z "${DURATION}s" "$url" >"$work/oha.json"
  oha_rps="$(jq '.summary.requestsPerSec' "$work/oha.json")"
  echo "oha:      $oha_rps req/s"
else
  echo "oha:      not installed ($OHA)"
fi

wrk_rps=""
if [[ -n "$WRK" ]]; then
  timeout "$BOUND" taskset -c "$generator_cpus" "$WRK" -t "$generator_count" \
    -c "$CONNECTIONS" -d "${DURATION}s" "$url" >"$work/wrk.txt"
  wrk_rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")"
  echo "wrk:      $wrk_rps req/s"
else
  echo "wrk:      not installed"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
[[ -n "$oha_rps" ]] && echo "isobench / oha = $(ratio "$isobench_rps" "$oha_rps") (goal >= 1.0)"
[[ -n "$wrk_rps" ]] && echo "isobench / wrk = $(ratio "$isobench_rps" "$wrk_rps") (goal >= 0.9)"
exit 0
