# Shared by the load scripts; source it. Needs curl, and the portal's outbox under $WORK/var.

# The CSRF token of a page read on stdin.
token() { sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p' | head -n1; }

# verified_session BASE WORK EMAIL PASSWORD JAR: registers EMAIL through the portal at BASE,
# follows the verification link from the newest mail in WORK/var/outbox, logs in, checks that
# /account answers 200, and prints the session cookie's value. The cookies stay in JAR.
verified_session() {
  local base=$1 work=$2 email=$3 password=$4 jar=$5 t link session
  local mails
  mails=$(find "$work/var/outbox" -name '*.eml' 2>/dev/null | wc -l)
  t=$(curl -s -c "$jar" -b "$jar" "$base/register" | token)
  curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "email=$email" --data-urlencode "password=$password" \
    --data-urlencode "password_confirm=$password" --data-urlencode "csrf_token=$t" "$base/register"
  # The portal mails the link after answering the registration: wait for it (up to 10 s).
  for _ in $(seq 1 100); do
    [ "$(find "$work/var/outbox" -name '*.eml' 2>/dev/null | wc -l)" -gt "$mails" ] && break
    sleep 0.1
  done
  link=$(grep -hoE '/verify/[A-Za-z0-9_-]+' "$(ls -t "$work"/var/outbox/*.eml | head -n1)" | head -n1)
  curl -s -o /dev/null "$base$link"
  t=$(curl -s -c "$jar" -b "$jar" "$base/login" | token)
  curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "email=$email" --data-urlencode "password=$password" \
    --data-urlencode "csrf_token=$t" "$base/login"
  session=$(awk '$6 == "phaze_session" {print $7}' "$jar")
  [ -n "$session" ] || { echo "login failed" >&2; return 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' -b "phaze_session=$session" "$base/account")" = 200 ] ||
    { echo "the new session does not open /account" >&2; return 1; }
  echo "$session"
}

DB="${PHAZE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${PHAZE_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# cluster_env WORK SCHEMA PREFIX BIN: exports the cluster shape's settings (PostgreSQL schema
# SCHEMA in $DB, Redis keys under PREFIX in $REDIS, fresh random keys, data under WORK/var) and
# migrates a fresh SCHEMA with BIN.
cluster_env() {
  local work=$1 schema=$2 prefix=$3 bin=$4
  key() { head -c32 /dev/urandom | base64; }
  export PHAZE__STORE__DATA_DIR="$work/var" PHAZE__STORE__KIND=postgres \
    PHAZE__STORE__POSTGRES__URL="$DB" PHAZE__STORE__POSTGRES__SCHEMA="$schema" \
    PHAZE__STORE__REDIS__URL="$REDIS" PHAZE__STORE__REDIS__PREFIX="$prefix" \
    PHAZE__SECRETS__SESSION_KEYS="$(key)" PHAZE__SECRETS__CSRF_KEY="$(key)" \
    PHAZE__SECRETS__TOKEN_PEPPER="$(key)"
  psql -q "$DB" -c "DROP SCHEMA IF EXISTS $schema CASCADE" 2>/dev/null
  "$bin" migrate >/dev/null
}

# cluster_cleanup SCHEMA PREFIX: drops what cluster_env made.
cluster_cleanup() {
  psql -q "$DB" -c "DROP SCHEMA IF EXISTS $1 CASCADE" 2>/dev/null || true
  redis-cli -u "$REDIS" --scan --pattern "$2*" | xargs -r redis-cli -u "$REDIS" del >/dev/null || true
}
