#!/usr/bin/env bash
# Peer comparison for /health: nginx (one worker, a static `return 200`) against the
# release isobench-server, each pinned to the last CPU, driven by the same wrk command pinned
# to the other CPU(s). Prints both req/s and the ratio (target: isobench >= 0.8x nginx), the
# server's idle RSS and its start-to-first-200 time. Bounded (two warm-ups and two runs of
# DURATION each, start-up polls capped) and cleans up after itself on any exit.
#
# Environment: ISOBENCH_SERVER_BIN (a built server; default: build the static release
# binary), DURATION (default 10s), WARMUP (default 2s), CONNECTIONS (default 50),
# THREADS (default 1), NGINX_PORT (default 18089).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
duration="${DURATION:-10s}"
warmup="${WARMUP:-2s}"
connections="${CONNECTIONS:-50}"
threads="${THREADS:-1}"
nginx_port="${NGINX_PORT:-18089}"

for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "nginx-health: $tool is not installed" >&2; exit 2; }
done
cpus="$(nproc)"
if [ "$cpus" -lt 2 ]; then
  echo "nginx-health: needs at least 2 CPUs (server on one, wrk on the rest)" >&2
  exit 2
fi
server_cpu=$((cpus - 1))
load_cpus="0-$((cpus - 2))"

if [ -n "${ISOBENCH_SERVER_BIN:-}" ]; then
  server_bin="$ISOBENCH_SERVER_BIN"
else
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  (cd "$here" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --quiet \
    --no-default-features --bin isobench-server --target "$triple")
  server_bin="$here/target/$triple/release/isobench-server"
fi

work="$(mktemp -d -t nginx-health.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

now_ns() { date +%s%N; }

# Polls $1 until it answers 200 (at most ~10 s); prints the milliseconds since $2 (ns).
first_200_ms() {
  local url="$1" since="$2"
  for _ in $(seq 5000); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" = 200 ]; then
      echo "$(( ($(now_ns) - since) / 1000000 ))"
      return 0
    fi
    sleep 0.002
  done
  echo "nginx-health: $url never answered 200" >&2
  return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Runs wrk against $1 after a warm-up; prints req/s.
measure() {
  local url="$1"
  taskset -c "$load_cpus" wrk -t"$threads" -c"$connections" -d"$warmup" "$url" >/dev/null
  taskset -c "$load_cpus" wrk -t"$threads" -c"$connections" -d"$duration" "$url" \
    | tee "$work/wrk.out" >&2
  awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out"
}

# nginx: one worker, keep-alive, no logging, everything under the temporary prefix.
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location = /health {
      default_type application/json;
      return 200 '{"status":"ok"}';
    }
  }
}
CONF

echo "== nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') on CPU $server_cpu, wrk -t$threads -c$connections -d$duration on CPU(s) $load_cpus" >&2
started="$(now_ns)"
taskset -c "$server_cpu" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
nginx_start_ms="$(first_200_ms "http://127.0.0.1:$nginx_port/health" "$started")"
nginx_rps="$(measure "http://127.0.0.1:$nginx_port/health")"
kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true

echo "== isobench-server ($server_bin) on CPU $server_cpu" >&2
started="$(now_ns)"
RUST_LOG=warn taskset -c "$server_cpu" "$server_bin" --bind 127.0.0.1 --port 0 >"$work/server.out" &
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 1000); do
  grep -q '^listening on ' "$work/server.out" && break
  sleep 0.005
done
address="$(sed -n 's/^listening on //p' "$work/server.out")"
[ -n "$address" ] || { echo "nginx-health: isobench-server did not announce its address" >&2; exit 1; }
server_start_ms="$(first_200_ms "http://$address/health" "$started")"
sleep 0.5
server_idle_rss="$(rss_kib "$server_pid")"
server_rps="$(measure "http://$address/health")"
server_loaded_rss="$(rss_kib "$server_pid")"
kill -TERM "$server_pid"; wait "$server_pid" || { echo "nginx-health: server exit status $?" >&2; exit 1; }

ratio="$(awk -v a="$server_rps" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')"
echo
echo "nginx            /health: $nginx_rps req/s (start to first 200: ${nginx_start_ms} ms)"
echo "isobench-server  /health: $server_rps req/s (start to first 200: ${server_start_ms} ms)"
echo "ratio isobench/nginx: $ratio (target >= 0.80)"
echo "isobench-server RSS: idle ${server_idle_rss} KiB, after load ${server_loaded_rss} KiB"
