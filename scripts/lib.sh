# Shared by the load scripts; source it. Needs curl, and the portal's outbox under $WORK/var.

# The CSRF token of a page read on stdin.
token() { sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p' | head -n1; }

# verified_session BASE WORK EMAIL PASSWORD JAR: registers EMAIL through the portal at BASE,
# follows the verification link from the newest mail in WORK/var/outbox, logs in, checks that
# /account answers 200, and prints the session cookie's value. The cookies stay in JAR.
verified_session() {
  local base=$1 work=$2 email=$3 password=$4 jar=$5 t link session
  t=$(curl -s -c "$jar" -b "$jar" "$base/register" | token)
  curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "email=$email" --data-urlencode "password=$password" \
    --data-urlencode "password_confirm=$password" --data-urlencode "csrf_token=$t" "$base/register"
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
