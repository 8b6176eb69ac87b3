#!/usr/bin/env bash
# Duplicate webhook deliveries against the release binary: Stripe's retries and replays are the
# webhook's hot path (verify the signature, parse, find the id applied, answer 200).
#
#   bash scripts/webhook-load.sh                 # embedded default (fs store)
#   STORE=cluster bash scripts/webhook-load.sh   # PostgreSQL + Redis
#
# One run: GET /healthz (the baseline), then POST /webhooks/stripe with one signed, already
# applied event, as many times as wrk can. Needs wrk, curl and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/phaze-target}"
DURATION="${DURATION:-10s}"
STORE="${STORE:-fs}"
PORT="${PORT:-18081}"
BASE="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
PID=""
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release -p phaze-portal >/dev/null
  BIN="$CARGO_TARGET_DIR/release/phaze-portal"
fi

SECRET="whsec_load_test_0123456789"
export PHAZE__HTTP__PORT=$PORT PHAZE__LOG__FILTER=warn PHAZE__PAYMENTS__WEBHOOK_SECRETS=$SECRET
case "$STORE" in
  fs) export PHAZE__STORE__DATA_DIR="$WORK/var" ;;
  cluster) cluster_env "$WORK" phaze_webhook_load "phaze-webhook-load:$$:" "$BIN" ;;
  *) echo "STORE must be fs or cluster" >&2; exit 2 ;;
esac

"$BIN" serve &
PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null && break; sleep 0.1; done

# A real-sized event (a checkout.session.completed is ~2 KB), signed now: the tolerance is five
# minutes, longer than the run.
T=$(date +%s)
USER_ID="00000000-0000-4000-8000-$(printf '%012d' $$)"
PAD=$(head -c 1500 /dev/zero | tr '\0' 'x')
BODY="{\"id\":\"evt_load_1\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":$T,\"data\":{\"object\":{\"id\":\"cs_load\",\"object\":\"checkout.session\",\"client_reference_id\":\"$USER_ID\",\"customer\":\"cus_load\",\"subscription\":\"sub_load\",\"metadata\":{\"phaze_price\":\"price_load\"},\"padding\":\"$PAD\"}}}"
SIG=$(printf '%s.%s' "$T" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
HEADER="t=$T,v1=$SIG"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Stripe-Signature: $HEADER" -H 'Content-Type: application/json' \
  --data-binary "$BODY" "$BASE/webhooks/stripe")
[ "$code" = 200 ] || { echo "first delivery answered $code" >&2; exit 1; }
echo "first delivery applied ($code); body ${#BODY} bytes"

cat > "$WORK/dup.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Stripe-Signature"] = "$HEADER"
wrk.body = [==[$BODY]==]
LUA

echo "== GET /healthz (baseline), wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency "$BASE/healthz" | tee "$WORK/healthz.txt"
echo "== POST /webhooks/stripe, the applied event again, wrk -t2 -c64 -d$DURATION"
wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/dup.lua" "$BASE/webhooks/stripe" | tee "$WORK/dup.txt"

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
echo
echo "== summary ($STORE)"
echo "healthz req/s:   $(rps "$WORK/healthz.txt")"
echo "duplicate req/s: $(rps "$WORK/dup.txt") (non-2xx: $(awk '/Non-2xx/ {n = $5} END {print n + 0}' "$WORK/dup.txt"))"
awk -v d="$(rps "$WORK/dup.txt")" -v h="$(rps "$WORK/healthz.txt")" 'BEGIN {printf "ratio duplicate/healthz: %.2f\n", d / h}'
for f in healthz dup; do
  echo "$f latency avg $(awk '/Latency/ {print $2; exit}' "$WORK/$f.txt"), p50 $(awk '/ 50%/ {print $2}' "$WORK/$f.txt"), p99 $(awk '/ 99%/ {print $2}' "$WORK/$f.txt")"
done
