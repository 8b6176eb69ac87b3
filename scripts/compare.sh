#!/usr/bin/env bash
# A/B rounds on the cluster shape: one or more portal binaries on the same PostgreSQL and Redis,
# each round `GET /healthz` on the first binary (the baseline), then authenticated `GET /account`
# on each binary in turn. Loopback only; needs wrk, curl, psql and perf (for the modes below).
#
#   bash scripts/compare.sh ROUNDS BIN [BIN...]
#   MODE=syscalls bash scripts/compare.sh 1 BIN    # system calls, wake-ups, switches per request
#   MODE=threads  bash scripts/compare.sh 1 BIN    # CPU and context switches per thread
#   MODE=perf PERF_OUT=FILE bash scripts/compare.sh 1 BIN   # perf record -g of the first binary
#
# For each run it prints requests/s, the ratio to the round's /healthz, the CPU the portal and
# Redis spent per request (/proc/<pid>/stat over the run) and the share of the machine's time the
# hypervisor stole meanwhile (/proc/stat): on shared virtual machines compare rounds with little
# steal only. PATH_=/healthz measures another path in the modes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || { sed -n 2,14p "$0"; exit 2; }
ROUNDS=$1; shift
MODE="${MODE:-rounds}"
URL_PATH="${PATH_:-/account}"
PREFIX="phaze-compare:$$:"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  cluster_cleanup phaze_compare "$PREFIX"
  rm -rf "$WORK"
}
trap cleanup EXIT
export PHAZE__LOG__FILTER=warn
cluster_env "$WORK" phaze_compare "$PREFIX" "$1"

port=18100
for bin in "$@"; do
  port=$((port + 1))
  PHAZE__HTTP__PORT=$port "$bin" serve &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

# A verified account, logged in through the first portal (the session is valid on all of them).
BASE=http://127.0.0.1:18101
EMAIL=compare@example.com
PASSWORD="correct horse battery staple"
SESSION=$(verified_session "$BASE" "$WORK" "$EMAIL" "$PASSWORD" "$WORK/jar")
COOKIE="Cookie: phaze_session=$SESSION"
REDIS_PID=$(pgrep -x redis-server | head -n1)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system, in 10 ms ticks
steal() { awk '/^cpu / {print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
per_req() { awk -v d="$1" -v n="$2" 'BEGIN {printf "%.1f", d * 10000 / n}'; }   # ticks -> µs
stolen() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f%%", 100 * (y[1] - x[1]) / (y[2] - x[2])}'; }
rps() { awk '/Requests\/sec/ {print $2}'; }
count() { awk '/requests in/ {print $1}'; }

case "$MODE" in
  syscalls)
    wrk -t2 -c64 -d8s -H "$COOKIE" "$BASE$URL_PATH" > "$WORK/wrk" &
    WRK=$!
    sleep 1
    perf stat -x, -o "$WORK/stat" -p "${PIDS[0]}" -e syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,sched:sched_wakeup,sched:sched_switch -- sleep 5
    wait "$WRK"
    r=$(rps < "$WORK/wrk")
    echo "$URL_PATH: $r req/s; per request:"
    awk -F, -v r="$r" 'NF > 2 {printf "  %-34s %.3f\n", $3, $1 / (r * 5)}' "$WORK/stat"
    ;;
  threads)
    snap() { for t in "/proc/${PIDS[0]}/task/"*; do
      echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '/^voluntary/ {v=$2} /^nonvoluntary/ {n=$2} END {print v, n}' "$t/status") $(awk '{print $14 + $15}' "$t/stat")"
    done; }
    snap > "$WORK/a"
    wrk -t2 -c64 -d5s -H "$COOKIE" "$BASE$URL_PATH" > "$WORK/wrk"
    snap > "$WORK/b"
    n=$(count < "$WORK/wrk")
    echo "$URL_PATH: $(rps < "$WORK/wrk") req/s; per request and thread:"
    join "$WORK/a" "$WORK/b" | awk -v n="$n" '$9 > $5 {printf "  %-6s %-18s voluntary %.3f  preempted %.3f  cpu %.1f µs\n", $1, $2, ($7-$3)/n, ($8-$4)/n, ($9-$5)*10000/n}'
    ;;
  perf)
    wrk -t2 -c64 -d12s -H "$COOKIE" "$BASE$URL_PATH" > /dev/null &
    WRK=$!
    sleep 3
    perf record -F 2000 -g -p "${PIDS[0]}" -o "${PERF_OUT:?PERF_OUT=file}" -- sleep 6 2>/dev/null
    wait "$WRK"
    ;;
  rounds)
    for r in $(seq 1 "$ROUNDS"); do
      s0=$(steal); c0=$(ticks "${PIDS[0]}")
      wrk -t2 -c64 -d5s "$BASE/healthz" > "$WORK/wrk"
      s1=$(steal); c1=$(ticks "${PIDS[0]}")
      h=$(rps < "$WORK/wrk")
      line="round $r: /healthz $h (portal $(per_req $((c1 - c0)) "$(count < "$WORK/wrk")") µs, steal $(stolen "$s0" "$s1"))"
      for i in "${!PIDS[@]}"; do
        pid=${PIDS[$i]}
        s0=$(steal); c0=$(ticks "$pid"); r0=$(ticks "$REDIS_PID")
        wrk -t2 -c64 -d5s -H "$COOKIE" "http://127.0.0.1:$((18101 + i))/account" > "$WORK/wrk"
        s1=$(steal); c1=$(ticks "$pid"); r1=$(ticks "$REDIS_PID")
        a=$(rps < "$WORK/wrk"); n=$(count < "$WORK/wrk")
        line="$line | bin $((i + 1)) /account $a ($(awk -v a="$a" -v h="$h" 'BEGIN {printf "%.2f", a / h}')), portal $(per_req $((c1 - c0)) "$n") µs, redis $(per_req $((r1 - r0)) "$n") µs, steal $(stolen "$s0" "$s1")"
      done
      echo "$line"
    done
    ;;
  *) echo "MODE must be rounds, syscalls, threads or perf" >&2; exit 2 ;;
esac
