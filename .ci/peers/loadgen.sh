#!/usr/bin/env bash
# Peer check of the load generator: does `isobench bench` keep up with oha and wrk?
#
# For each target in turn (the release isobench-server, then nginx-light answering
# `return 200`), pinned to the last CPU, runs isobench bench, oha and wrk interleaved
# (isobench, oha, wrk, isobench, …) for ROUNDS rounds, each pinned to the other CPU(s) with
# the same connection count and duration. Prints per run and as medians: req/s, the
# generator's CPU per request (GNU time, user + system) and the server's CPU per request over
# the same run (/proc, the server and its children), then the ratios; and the load average
# before and after, since the machine may be shared. Bounded: every command runs under
# `timeout`, and each target is stopped on any exit.
#
# Usage: .ci/peers/loadgen.sh  (env: DURATION=5 seconds, CONNECTIONS=50, ROUNDS=3,
#                               TARGET_PATH=/health, TARGETS="isobench-server nginx",
#                               ISOBENCH_ARGS="" extra flags for isobench bench)
set -euo pipefail

DURATION="${DURATION:-5}"          # seconds, for all three tools
CONNECTIONS="${CONNECTIONS:-50}"
TARGET_PATH="${TARGET_PATH:-/health}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
WRK="${WRK:-$(command -v wrk || true)}"
ROUNDS="${ROUNDS:-3}"             # interleaved rounds (isobench, oha, wrk, isobench, …)
BOUND=$((DURATION + 30))           # hard limit per tool run, seconds
TARGETS="${TARGETS:-isobench-server nginx}"
ISOBENCH_ARGS="${ISOBENCH_ARGS:-}"

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work=""
target_pid=""

stop_target() {
  if [[ -n "$target_pid" ]] && kill -0 "$target_pid" 2>/dev/null; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  target_pid=""
}
cleanup() {
  stop_target
  [[ -n "$work" ]] && rm -rf "$work"
  return 0
}
trap cleanup EXIT INT TERM

cpus="$(nproc)"
last=$((cpus - 1))
if ((cpus > 2)); then generator_cpus="0-$((last - 1))"; generator_count=$last
else generator_cpus="0"; generator_count=1; fi
# isobench starts one event loop per generator CPU (load::plan::threads). wrk gets one thread
# per generator CPU too, but at least two: on one CPU, wrk -t 1 served 0.99x of wrk -t 2
# (7 interleaved rounds), so two is its better setting there and the peer keeps it. oha runs
# with its own default (one thread per physical core).
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

start_isobench_server() {
  [[ -n "$server" ]] || { echo "isobench-server did not build; skipped" >&2; return 1; }
  : >"$work/server.log"
  taskset -c "$last" "$server" --bind 127.0.0.1 --port 0 >"$work/server.log" 2>&1 &
  target_pid=$!
  local addr=""
  for _ in $(seq 1 100); do
    addr="$(sed -n 's/.*listening on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/server.log" | head -1)"
    [[ -n "$addr" ]] && break
    sleep 0.05
  done
  if [[ -n "$addr" ]] && wait_for "http://$addr$TARGET_PATH"; then
    url="http://$addr$TARGET_PATH"
    return 0
  fi
  echo "isobench-server did not come up; skipped" >&2
  stop_target
  return 1
}

start_nginx() {
  command -v nginx >/dev/null || { echo "nginx: not installed; skipped" >&2; return 1; }
  local port
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
  if wait_for "http://127.0.0.1:$port$TARGET_PATH"; then
    url="http://127.0.0.1:$port$TARGET_PATH"
    return 0
  fi
  echo "nginx did not come up; skipped" >&2
  stop_target
  return 1
}

# CPU seconds (user + system) used so far by the target and its children (nginx's worker).
ticks_per_s="$(getconf CLK_TCK)"
server_cpu_s() {
  local pids total=0 pid fields
  pids="$target_pid $(pgrep -P "$target_pid" || true)"
  for pid in $pids; do
    fields="$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)"
    total=$((total + fields))
  done
  awk -v t="$total" -v hz="$ticks_per_s" 'BEGIN { printf "%.3f", t / hz }'
}

# Each tool: prints "<req/s> <requests> <cpu seconds> [extra]"; CPU from GNU time.
timed() { /usr/bin/time -f "%U %S" -o "$work/time" "$@"; }
cpu_s() { awk '{ printf "%.3f", $1 + $2 }' "$work/time"; }

run_isobench() {
  # shellcheck disable=SC2086 # ISOBENCH_ARGS is a list of flags
  timed timeout "$BOUND" taskset -c "$generator_cpus" "$isobench" bench --url "$url" \
    -c "$CONNECTIONS" -d "${DURATION}s" --warmup 0s --no-progress $ISOBENCH_ARGS \
    --output "$work/isobench.json" >"$work/isobench.txt"
  local load='.environments[0].rounds[0].scenarios[0].load'
  echo "$(jq "$load.throughput_rps" "$work/isobench.json") \
$(jq "$load.ok" "$work/isobench.json") $(cpu_s) \
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

median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
per_request() { awk -v col="$2" '{ c += $col; n += $1 } END { printf "%.1f", (n > 0 ? c * 1e6 / n : 0) }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== $CONNECTIONS connections, ${DURATION}s each, $ROUNDS interleaved round(s); generators"
echo "== pinned to CPU(s) $generator_cpus, targets to CPU $last. The machine may be shared:"
echo "== compare medians, and CPU per request. Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

summary=""
for target in $TARGETS; do
  url=""
  case "$target" in
    isobench-server) start_isobench_server || continue ;;
    nginx) start_nginx || continue ;;
    *) echo "unknown target $target; skipped" >&2; continue ;;
  esac
  echo "== target: $target at $url"
  for tool in "${tools[@]}"; do rm -f "$work/$tool.rps" "$work/$tool.cpu"; done
  for round in $(seq 1 "$ROUNDS"); do
    for tool in "${tools[@]}"; do
      before="$(server_cpu_s)"
      read -r rps requests cpu extra < <("run_$tool")
      served="$(awk -v a="$before" -v b="$(server_cpu_s)" 'BEGIN { printf "%.3f", b - a }')"
      echo "$rps" >>"$work/$tool.rps"
      echo "$requests $cpu $served" >>"$work/$tool.cpu"
      printf 'round %d  %-8s %10.0f req/s  %8d requests  gen %6.1f CPU µs/req  server %6.1f CPU µs/req %s\n' \
        "$round" "$tool" "$rps" "$requests" \
        "$(awk -v c="$cpu" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? c * 1e6 / n : 0) }')" \
        "$(awk -v c="$served" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? c * 1e6 / n : 0) }')" \
        "${extra:-}"
    done
  done
  stop_target
  echo "== $target: medians over $ROUNDS round(s) (CPU per request: totals over all rounds)"
  for tool in "${tools[@]}"; do
    line="$(printf '%-16s %-8s %10.0f req/s   gen %6s CPU µs/req   server %6s CPU µs/req' "$target" "$tool" \
      "$(median "$work/$tool.rps")" "$(per_request "$work/$tool.cpu" 2)" "$(per_request "$work/$tool.cpu" 3)")"
    echo "$line"
    summary+="$line"$'\n'
  done
  mine="$(median "$work/isobench.rps")"
  if [[ -f "$work/oha.rps" ]]; then
    line="$target: isobench / oha = $(ratio "$mine" "$(median "$work/oha.rps")") req/s (goal >= 1.2)"
    echo "$line"; summary+="$line"$'\n'
  fi
  if [[ -f "$work/wrk.rps" ]]; then
    line="$target: isobench / wrk = $(ratio "$mine" "$(median "$work/wrk.rps")") req/s (goal >= 1.0)"
    echo "$line"; summary+="$line"$'\n'
  fi
done
echo "== summary (load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s' "$summary"
exit 0
