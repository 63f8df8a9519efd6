#!/bin/bash
# Entrypoint of the Asterisk container in docker/compose.yaml (mounted at /ai-call/entrypoint.sh).
# manager.conf cannot read environment variables, so this writes the ai-call AMI user,
# generated/ai-call-manager.conf, to /etc/asterisk/ai-call-manager.conf with its secret placeholder
# replaced by AI_CALL_AMI_SECRET, then runs the command (Asterisk). The secret never lands in the
# repository: only in that file, inside the container's own /etc/asterisk volume, mode 0600.
set -euo pipefail

etc=${AI_CALL_ASTERISK_ETC:-/etc/asterisk}
template="$etc/generated/ai-call-manager.conf"
target="$etc/ai-call-manager.conf"
placeholder='secret = REPLACE_WITH_THE_VALUE_OF_AI_CALL_AMI_SECRET'

fail() {
  printf 'ai-call lab: %s\n' "$*" >&2
  exit 1
}

[[ -r $template ]] || fail "$template is missing: run ai-call dialplan generate --out docker/asterisk/generated (docs/admin-guide.md, Docker)"
secret=${AI_CALL_AMI_SECRET:-}
[[ -n $secret ]] || fail 'AI_CALL_AMI_SECRET is empty: set it in docker/.env'
# manager.conf reads ";" as the start of a comment and trims blanks: keep the secret plain.
[[ $secret =~ ^[A-Za-z0-9._~+/=-]+$ ]] || fail 'AI_CALL_AMI_SECRET may hold only letters, digits and . _ ~ + / = - (e.g. openssl rand -hex 24)'
grep -qxF "$placeholder" "$template" || fail "$template has no line \"$placeholder\""

umask 077
tmp="$target.tmp.$$"
while IFS= read -r line || [[ -n $line ]]; do
  [[ $line != "$placeholder" ]] || line="secret = $secret"
  printf '%s\n' "$line"
done <"$template" >"$tmp"
mv -f "$tmp" "$target"
printf 'ai-call lab: wrote %s (AMI user with the secret from AI_CALL_AMI_SECRET)\n' "$target"

exec "$@"
