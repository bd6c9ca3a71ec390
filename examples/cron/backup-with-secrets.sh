#!/bin/sh
# Cron wrapper: one run at a time (flock), secrets for exactly this job, JSON diagnostics,
# SIGKILL 60 s after a stop signal, and the exit codes a monitoring script can rely on.
set -u

export RWS_VAULT_URL="https://vault.internal:8200"
export RWS_API_KEY_FILE="/etc/backup/rws-api-key"     # chmod 600, owned by the backup user
export RWS_CA_FILE="/etc/backup/vault-ca.pem"

exec 9>/run/lock/backup.lock
if ! flock -n 9; then
  echo '{"level":"warn","message":"previous backup still running; skipping"}' >&2
  exit 0
fi

run-with-secrets -e prod -k 'BACKUP_*' --log-format json --kill-after 60 --inject-as fd -- /opt/backup/bin/backup
status=$?

case $status in
  0)   ;;
  125) echo '{"level":"error","message":"run-with-secrets failed before the backup ran (vault, credential or config): see the line above"}' >&2 ;;
  126|127) echo '{"level":"error","message":"backup program missing or not executable"}' >&2 ;;
  *)   echo "{\"level\":\"error\",\"message\":\"backup failed with status $status\"}" >&2 ;;
esac
exit $status
