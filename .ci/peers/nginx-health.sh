#!/usr/bin/env bash
# Peer comparison for /health: nginx (one worker, a static `return 200`) against the
# release isobench-server, each pinned to the last CPU, driven by the same wrk command pinned
# to the other CPU(s), in ROUNDS interleaved rounds. Prints both medians in req/s and in CPU
# time per request, and their ratios (target: isobench >= 0.8x nginx), the server's idle RSS
# and each server's
# start-to-first-200 time. Bounded (2 x ROUNDS wrk runs of WARMUP + DURATION, start-up polls
# capped) and cleans up after itself on any exit.
#
# Environment: ISOBENCH_SERVER_BIN (a built server; default: build the static release
# binary), DURATION (default 10s), WARMUP (default 2s), CONNECTIONS (default 50),
# THREADS (default 1), ROUNDS (default 3), NGINX_PORT (default 18089), SERVER_PORT (default 18090).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
duration="${DURATION:-10s}"
warmup="${WARMUP:-2s}"
connections="${CONNECTIONS:-50}"
threads="${THREADS:-1}"
rounds="${ROUNDS:-3}"
nginx_port="${NGINX_PORT:-18089}"
server_port="${SERVER_PORT:-18090}"

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

# Microseconds since the epoch, from a bash builtin (no process start in the measurement).
now_us() { local t="$EPOCHREALTIME"; echo "${t/./}"; }

# One GET /health on 127.0.0.1:$1 through bash's /dev/tcp; succeeds on a 200.
probe_health() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 1 line <&3 || line=""
  exec 3<&- 3>&-
  [[ "$line" == "HTTP/1.1 200"* ]]
}

# Polls port $1 until /health answers 200 (at most ~10 s); prints the milliseconds since
# $2 (microseconds since the epoch) with 0.1 ms resolution.
first_200_ms() {
  local port="$1" since="$2"
  for _ in $(seq 10000); do
    if probe_health "$port" 2>/dev/null; then
      awk -v t="$(( $(now_us) - since ))" 'BEGIN { printf "%.1f", t / 1000 }'
      return 0
    fi
    sleep 0.001
  done
  echo "nginx-health: port $port never answered 200" >&2
  return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# CPU time (user + system, all threads) process $1 has used so far, in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
ticks_per_s="$(getconf CLK_TCK)"

# Runs wrk against $1 after a warm-up while reading the CPU time of server process $2;
# prints "req/s CPU-microseconds-per-request". CPU per request is what a busy shared machine
# disturbs least: it does not depend on how much CPU the server was given.
measure() {
  local url="$1" pid="$2" before after
  taskset -c "$load_cpus" wrk -t"$threads" -c"$connections" -d"$warmup" "$url" >/dev/null
  before="$(cpu_ticks "$pid")"
  taskset -c "$load_cpus" wrk -t"$threads" -c"$connections" -d"$duration" "$url" \
    | tee "$work/wrk.out" >&2
  after="$(cpu_ticks "$pid")"
  awk -v ticks="$((after - before))" -v hz="$ticks_per_s" '
    /requests in/ { requests = $1 }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%s %.2f\n", rps, ticks / hz * 1e6 / requests }' "$work/wrk.out"
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

echo "== nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') and isobench-server ($server_bin) on CPU $server_cpu;" \
  "wrk -t$threads -c$connections -d$duration on CPU(s) $load_cpus, $rounds interleaved rounds" >&2
started="$(now_us)"
taskset -c "$server_cpu" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
nginx_start_ms="$(first_200_ms "$nginx_port" "$started")"

started="$(now_us)"
RUST_LOG=warn taskset -c "$server_cpu" "$server_bin" --bind 127.0.0.1 --port "$server_port" >"$work/server.out" &
server_pid=$!
pids+=("$server_pid")
server_start_ms="$(first_200_ms "$server_port" "$started")"
grep -q "^listening on 127.0.0.1:$server_port\$" "$work/server.out" \
  || { echo "nginx-health: isobench-server did not announce 127.0.0.1:$server_port" >&2; exit 1; }
sleep 0.5
server_idle_rss="$(rss_kib "$server_pid")"

# nginx's master only supervises; its one worker does the serving.
nginx_worker="$(pgrep -P "$nginx_pid" | head -1)"
[ -n "$nginx_worker" ] || { echo "nginx-health: no nginx worker process" >&2; exit 1; }

# Interleaved rounds (A B, B A, A B, ...) so drift of a shared machine hits both alike;
# the figures reported are the medians.
nginx_all=()
server_all=()
nginx_cpu=()
server_cpu_us=()
run_nginx() {
  local out
  out="$(measure "http://127.0.0.1:$nginx_port/health" "$nginx_worker")"
  nginx_all+=("${out% *}"); nginx_cpu+=("${out#* }")
}
run_server() {
  local out
  out="$(measure "http://127.0.0.1:$server_port/health" "$server_pid")"
  server_all+=("${out% *}"); server_cpu_us+=("${out#* }")
}
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then run_nginx; run_server; else run_server; run_nginx; fi
done
server_loaded_rss="$(rss_kib "$server_pid")"
kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
[ "$server_status" -eq 0 ] || { echo "nginx-health: isobench-server exited with $server_status on SIGTERM" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
nginx_rps="$(median "${nginx_all[@]}")"
server_rps="$(median "${server_all[@]}")"
nginx_cpu_med="$(median "${nginx_cpu[@]}")"
server_cpu_med="$(median "${server_cpu_us[@]}")"
ratio="$(awk -v a="$server_rps" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')"
cpu_ratio="$(awk -v a="$server_cpu_med" -v b="$nginx_cpu_med" 'BEGIN { printf "%.2f", b / a }')"
echo
echo "nginx            /health: $nginx_rps req/s median (rounds: ${nginx_all[*]}), ${nginx_cpu_med} us CPU per request (rounds: ${nginx_cpu[*]}); start to first 200: ${nginx_start_ms} ms"
echo "isobench-server  /health: $server_rps req/s median (rounds: ${server_all[*]}), ${server_cpu_med} us CPU per request (rounds: ${server_cpu_us[*]}); start to first 200: ${server_start_ms} ms"
echo "ratio isobench/nginx: throughput $ratio, CPU efficiency (nginx CPU per request / isobench's) $cpu_ratio (target >= 0.80)"
echo "isobench-server RSS: idle ${server_idle_rss} KiB, after load ${server_loaded_rss} KiB"
