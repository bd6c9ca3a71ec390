#!/bin/sh
# Cron wrapper: one run at a time (flock), secrets for exactly this job, JSON diagnostics,
# SIGKILL 60 s after a stop signal, and the exit codes a monitoring script can rely on.
#
# cron starts jobs with PATH=/usr/bin:/bin and little else, so this script sets its own PATH
# and checks that run-with-secrets and node are there before anything runs: a missing tool is
# named as such, not blamed on the backup program. Settings may come from the crontab
# (VAR=value lines); the defaults are below.
set -u

PATH=/usr/local/bin:/usr/bin:/bin   # npm -g installs run-with-secrets under /usr/local/bin
export PATH
RWS=${RWS:-run-with-secrets}
BACKUP=${BACKUP:-/opt/backup/bin/backup}
LOCK=${BACKUP_LOCK:-/run/lock/backup.lock}
export RWS_VAULT_URL="${RWS_VAULT_URL:-https://vault.internal:8200}"
export RWS_API_KEY_FILE="${RWS_API_KEY_FILE:-/etc/backup/rws-api-key}"   # chmod 600, owned by the backup user
if [ -z "${RWS_CA_FILE:-}" ] && [ -f /etc/backup/vault-ca.pem ]; then
  export RWS_CA_FILE=/etc/backup/vault-ca.pem
fi

fail() { # status message
  printf '{"level":"error","message":"%s"}\n' "$2" >&2
  exit "$1"
}
command -v "$RWS" >/dev/null 2>&1 || fail 127 "run-with-secrets not found (looked for $RWS on PATH $PATH): install it (npm install -g run-with-secrets) or set RWS to its path"
command -v node >/dev/null 2>&1 || fail 127 "node not found on PATH $PATH, which run-with-secrets needs: install Node.js 20.19 or later or add its directory to PATH in this script"
[ -x "$BACKUP" ] || fail 127 "backup program $BACKUP missing or not executable"

exec 9>"$LOCK"
if ! flock -n 9; then
  echo '{"level":"warn","message":"previous backup still running; skipping"}' >&2
  exit 0
fi

"$RWS" -e "${RWS_ENVIRONMENT:-prod}" -k 'BACKUP_*' --log-format json --kill-after 60 --inject-as fd -- "$BACKUP"
status=$?

case $status in
  0)   ;;
  125) echo '{"level":"error","message":"run-with-secrets failed before the backup ran (vault, credential or config): see the line above"}' >&2 ;;
  126|127) echo '{"level":"error","message":"backup program missing or not executable"}' >&2 ;;
  *)   echo "{\"level\":\"error\",\"message\":\"backup failed with status $status\"}" >&2 ;;
esac
exit $status
