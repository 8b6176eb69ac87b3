#!/usr/bin/env bash
# Service-level load test of the release binary, loopback only. Needs wrk and curl.
#
#   bash scripts/load.sh                 # embedded default (fs store)
#   STORE=cluster bash scripts/load.sh   # PostgreSQL + Redis (PHAZE_TEST_DATABASE_URL/REDIS_URL)
#
# Measures, in one run: GET /healthz (baseline), authenticated GET /account, forward
# authentication (GET /auth/verify with the same cookie), GET /account p99 while 16 clients log
# in continuously, idle RSS; with STORE=cluster also login throughput on the
# cluster stores against the same binary on memory stores (the argon2-only bound).
# Bounded: a few runs of $DURATION each.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/phaze-target}"
DURATION="${DURATION:-10s}"
STORE="${STORE:-fs}"
PORT="${PORT:-18080}"
BASE="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
PID=""
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

# BIN=/path/to/phaze-portal measures another build (an A/B comparison) instead of building this one.
if [ -z "${BIN:-}" ]; then
  cargo build --release -p phaze-portal >/dev/null
  BIN="$CARGO_TARGET_DIR/release/phaze-portal"
fi

# The login load below must hash on every request, so this run lifts the per-client budgets
# (everything comes from 127.0.0.1) and the per-address challenge and lockout thresholds (16
# logins in flight for one address hold 16 reservations, so the guard would ask for a challenge);
# every other setting is the default of the shape.
export PHAZE__HTTP__PORT=$PORT PHAZE__LOG__FILTER=warn \
  PHAZE__RATELIMIT__LOGIN_PER_CLIENT=100000000 PHAZE__RATELIMIT__POST_PER_CLIENT=100000000 \
  PHAZE__RATELIMIT__CHALLENGE_AFTER_FAILURES=100000000 \
  PHAZE__RATELIMIT__LOCKOUT_AFTER_FAILURES=100000000 PHAZE__RATELIMIT__DEVICE_FAILURES=100000000
case "$STORE" in
  fs) export PHAZE__STORE__DATA_DIR="$WORK/var" ;;
  cluster)
    cluster_env "$WORK" phaze_load "phaze-load:$$:" "$BIN" ;;
  *) echo "STORE must be fs or cluster" >&2; exit 2 ;;
esac

start() {
  "$BIN" "$@" &
  PID=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null && return; sleep 0.1; done
  echo "portal did not start" >&2; exit 1
}
EMAIL="load@example.com"; PASSWORD="correct horse battery staple"

# A verified account and a logged-in cookie in $SESSION; the login load script in $WORK/login.lua.
account() {
  local jar="$WORK/jar.$1"
  SESSION=$(verified_session "$BASE" "$WORK" "$EMAIL" "$PASSWORD" "$jar")
  local at anon
  at=$(curl -s -c "$jar.anon" -b "$jar.anon" "$BASE/login" | token)
  anon=$(awk '$6 == "phaze_csrf" {print $7}' "$jar.anon")
  cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "phaze_csrf=$anon"
wrk.body = "email=load%40example.com&password=correct+horse+battery+staple&csrf_token=$at"
LUA
}
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
# Requests/s counting only 2xx/3xx answers (a 4xx/5xx under load is no throughput).
ok_rps() { awk '/requests in/ {n=$1; s=$4} /Non-2xx/ {bad=$5} END {sub("s,","",s); printf "%.2f", (n-bad)/s}' "$1"; }

start serve
sleep 2
IDLE_RSS=$(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)
echo "idle RSS: $IDLE_RSS"
account main

echo "== GET /healthz (baseline), wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency "$BASE/healthz" | tee "$WORK/healthz.txt"
echo "== GET /account (authenticated), wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency -H "Cookie: phaze_session=$SESSION" "$BASE/account" | tee "$WORK/account.txt"
echo "== GET /auth/verify (forward authentication, logged in), wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency -H "Cookie: phaze_session=$SESSION" "$BASE/auth/verify" | tee "$WORK/verify.txt"

# 16 clients logging in continuously (each request: argon2id verify + new session), while one
# wrk measures GET /account latency.
echo "== GET /account, wrk -t1 -c16 -d$DURATION, while 16 clients log in (wrk -t1 -c16)"
wrk -t1 -c16 -d"$DURATION" -s "$WORK/login.lua" "$BASE/login" > "$WORK/logins.txt" &
LOGINS=$!
wrk -t1 -c16 -d"$DURATION" --latency -H "Cookie: phaze_session=$SESSION" "$BASE/account" | tee "$WORK/account-under-login.txt"
wait "$LOGINS"
echo "-- the login load itself:"
cat "$WORK/logins.txt"
AFTER_RSS=$(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)

if [ "$STORE" = cluster ]; then
  echo "== logins alone, wrk -t1 -c16 -d$DURATION: cluster stores"
  wrk -t1 -c16 -d"$DURATION" -s "$WORK/login.lua" "$BASE/login" | tee "$WORK/logins-cluster.txt"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  # The argon2-only bound: the same binary, the same argon2 parameters, stores in memory.
  PHAZE__STORE__KIND=memory PHAZE__STORE__REDIS__URL= start serve
  account memory
  echo "== logins alone, wrk -t1 -c16 -d$DURATION: memory stores (argon2-only bound)"
  wrk -t1 -c16 -d"$DURATION" -s "$WORK/login.lua" "$BASE/login" | tee "$WORK/logins-memory.txt"
fi

echo
echo "== summary ($STORE)"
echo "healthz req/s:  $(rps "$WORK/healthz.txt")"
echo "account req/s:  $(rps "$WORK/account.txt")"
awk -v a="$(rps "$WORK/account.txt")" -v h="$(rps "$WORK/healthz.txt")" 'BEGIN {printf "ratio account/healthz: %.2f\n", a / h}'
echo "verify req/s:   $(rps "$WORK/verify.txt") (non-2xx: $(awk '/Non-2xx/ {n = $5} END {print n + 0}' "$WORK/verify.txt"))"
awk -v a="$(rps "$WORK/verify.txt")" -v h="$(rps "$WORK/healthz.txt")" 'BEGIN {printf "ratio verify/healthz: %.2f\n", a / h}'
for f in healthz account verify; do
  echo "$f latency avg $(awk '/Latency/ {print $2; exit}' "$WORK/$f.txt"), p50 $(awk '/ 50%/ {print $2}' "$WORK/$f.txt"), p99 $(awk '/ 99%/ {print $2}' "$WORK/$f.txt")"
done
echo "account p99 under login load: $(awk '/ 99%/ {print $2}' "$WORK/account-under-login.txt")"
echo "logins/s under the mixed load: $(rps "$WORK/logins.txt")"
echo "idle RSS: $IDLE_RSS; RSS after load: $AFTER_RSS"
if [ "$STORE" = cluster ]; then
  echo "successful logins/s cluster: $(ok_rps "$WORK/logins-cluster.txt"); memory (argon2-only bound): $(ok_rps "$WORK/logins-memory.txt")"
  awk -v c="$(ok_rps "$WORK/logins-cluster.txt")" -v m="$(ok_rps "$WORK/logins-memory.txt")" 'BEGIN {printf "ratio logins cluster/bound: %.2f\n", c / m}'
  cluster_cleanup phaze_load "phaze-load:$$:"
fi
