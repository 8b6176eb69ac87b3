#!/usr/bin/env bash
# Service-level load test of the release binary on the embedded default (fs store), loopback only.
# Measures, in one run: GET /healthz (baseline), authenticated GET /account, GET /account p99 while
# 16 clients log in continuously, and idle RSS. Needs wrk and curl. Bounded: a few 10 s runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/phaze-target}"
DURATION="${DURATION:-10s}"
PORT="${PORT:-18080}"
BASE="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release -p phaze-portal >/dev/null
BIN="$CARGO_TARGET_DIR/release/phaze-portal"
# The login load below must hash on every request, so this run lifts the per-client budgets
# (everything comes from 127.0.0.1); every other setting is the embedded default.
PHAZE__HTTP__PORT=$PORT PHAZE__STORE__DATA_DIR="$WORK/var" PHAZE__LOG__FILTER=warn \
  PHAZE__RATELIMIT__LOGIN_PER_CLIENT=100000000 PHAZE__RATELIMIT__POST_PER_CLIENT=100000000 \
  "$BIN" &
PID=$!
for _ in $(seq 1 50); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
sleep 2
echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"

# A verified account and a logged-in cookie.
JAR="$WORK/jar"
EMAIL="load@example.com"; PASSWORD="correct horse battery staple"
token() { sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p' | head -n1; }
T=$(curl -s -c "$JAR" -b "$JAR" "$BASE/register" | token)
curl -s -o /dev/null -c "$JAR" -b "$JAR" --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" \
  --data-urlencode "password_confirm=$PASSWORD" --data-urlencode "csrf_token=$T" "$BASE/register"
LINK=$(grep -rhoE '/verify/[A-Za-z0-9_-]+' "$WORK/var/outbox" | head -n1)
curl -s -o /dev/null "$BASE$LINK"
T=$(curl -s -c "$JAR" -b "$JAR" "$BASE/login" | token)
curl -s -o /dev/null -c "$JAR" -b "$JAR" --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" \
  --data-urlencode "csrf_token=$T" "$BASE/login"
SESSION=$(awk '$6 == "phaze_session" {print $7}' "$JAR")
[ -n "$SESSION" ] || { echo "login failed" >&2; exit 1; }
test "$(curl -s -o /dev/null -w '%{http_code}' -b "phaze_session=$SESSION" "$BASE/account")" = 200

echo "== GET /healthz (baseline), wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency "$BASE/healthz" | tee "$WORK/healthz.txt"
echo "== GET /account (authenticated), wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency -H "Cookie: phaze_session=$SESSION" "$BASE/account" | tee "$WORK/account.txt"

# 16 clients logging in continuously (each request: argon2id verify + new session), while one
# wrk measures GET /account latency.
AT=$(curl -s -c "$JAR.anon" -b "$JAR.anon" "$BASE/login" | token)
ANON=$(awk '$6 == "phaze_csrf" {print $7}' "$JAR.anon")
cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "phaze_csrf=$ANON"
wrk.body = "email=load%40example.com&password=correct+horse+battery+staple&csrf_token=$AT"
LUA
echo "== GET /account, wrk -t1 -c16 -d$DURATION, while 16 clients log in (wrk -t1 -c16)"
wrk -t1 -c16 -d"$DURATION" -s "$WORK/login.lua" "$BASE/login" > "$WORK/logins.txt" &
LOGINS=$!
wrk -t1 -c16 -d"$DURATION" --latency -H "Cookie: phaze_session=$SESSION" "$BASE/account" | tee "$WORK/account-under-login.txt"
wait "$LOGINS"
echo "-- the login load itself:"
cat "$WORK/logins.txt"

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
echo
echo "== summary"
echo "healthz req/s:  $(rps "$WORK/healthz.txt")"
echo "account req/s:  $(rps "$WORK/account.txt")"
awk -v a="$(rps "$WORK/account.txt")" -v h="$(rps "$WORK/healthz.txt")" 'BEGIN {printf "ratio account/healthz: %.2f\n", a / h}'
echo "account p99 under login load: $(awk '/ 99%/ {print $2}' "$WORK/account-under-login.txt")"
echo "logins/s: $(rps "$WORK/logins.txt")"
echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
