#!/usr/bin/env bash
# Installs ai-call on a bare server as the systemd service ai-call (docs/admin-guide.md).
#
#   sudo bash scripts/install.sh                      # pack this checkout (npm pack builds dist/)
#   sudo bash scripts/install.sh ai-call-0.1.0.tgz    # a package made by npm pack
#   bash scripts/install.sh --dry-run                 # print the plan, change nothing
#
# What it does, each step safe to repeat:
#   - checks Node.js >= 20 and npm;
#   - creates the system user ai-call (no login, no home);
#   - unpacks the package into /opt/ai-call and runs npm ci --omit=dev there (the previous
#     version is kept in /opt/ai-call.previous);
#   - writes /etc/ai-call/ai-call.yaml and /etc/ai-call/secrets.env (0600) only if they are missing;
#   - installs /etc/systemd/system/ai-call.service and /usr/local/bin/ai-call, runs
#     systemctl daemon-reload, enables the service and (re)starts it unless --no-start.
# It never reads or writes Asterisk's files: the dialplan is a next step it prints.
set -euo pipefail

readonly SERVICE=ai-call
readonly SERVICE_USER=ai-call
readonly APP_DIR=/opt/ai-call
readonly ETC_DIR=/etc/ai-call
readonly STATE_DIR=/var/lib/ai-call
readonly UNIT_FILE=/etc/systemd/system/ai-call.service
readonly WRAPPER=/usr/local/bin/ai-call
readonly WRAPPER_MARK='# ai-call command for administrators (written by scripts/install.sh)'
readonly MIN_NODE_MAJOR=20

usage() {
  cat <<'EOF'
Usage: install.sh [options] [PACKAGE.tgz]

Installs ai-call as the systemd service "ai-call". Without PACKAGE.tgz it packs the checkout
this script belongs to (npm pack, which runs the build there; run npm ci in it first).

Options:
  --prefix DIR       install under DIR as if it were / (staging, packaging, tests). Creates no
                     user and runs no chown or systemctl; needs no root.
  --dry-run          print every step, change nothing
  --no-start         install and enable the service, but do not (re)start it
  --lockfile FILE    package-lock.json for npm ci when PACKAGE.tgz carries none (npm pack never
                     includes package-lock.json; without one, npm install resolves the versions)
  --print-config     print the default /etc/ai-call/ai-call.yaml and exit
  -h, --help         this help
EOF
}

PREFIX=/
DRY_RUN=0
NO_START=0
PACKAGE=''
LOCKFILE=''

die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
say() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# The default configuration: the embedded default (the echo agent, loopback only) with comments.

default_config() {
  cat <<'EOF'
# ai-call configuration (written once by scripts/install.sh; never overwritten, edit freely).
# Every setting, its default and unit: /opt/ai-call/docs/configuration.md
# Check it:  ai-call check-config
# Secrets (ELEVENLABS_API_KEY, AI_CALL_AMI_SECRET, AI_CALL_STATUS_TOKEN) go in
# /etc/ai-call/secrets.env, never in this file.

# Where Asterisk reaches ai-call. With Asterisk on this host keep the defaults (127.0.0.1).
# With Asterisk on another host, listen on a private address and allow only that host: AudioSocket
# has no authentication, so its port must never be reachable from anywhere else.
# agi:
#   host: 127.0.0.1
#   port: 4573
#   allow: [127.0.0.1, ::1]
# audiosocket:
#   host: 127.0.0.1
#   port: 9092
#   advertise: 127.0.0.1        # the address Asterisk connects to (set it when host is 0.0.0.0)
# status:
#   host: 127.0.0.1             # GET /healthz /calls /metrics, WebSocket /status
#   port: 9093
# calls:
#   recordDir: /var/lib/ai-call/records   # per-call JSON Lines records (writable by the service)
# dialplan:
#   agiHost: 10.0.0.5           # the address Asterisk dials, when agi.host is 0.0.0.0

agents:
  echo: { provider: echo }      # diagnostic: plays the caller back 200 ms late
  # sales:
  #   provider: elevenlabs
  #   agentId: agent_0123456789abcdefghij   # from the ElevenLabs agent's settings
  #   maxConcurrent: 5                      # your ElevenLabs plan's concurrency
  #   fallback: from-internal,100,1         # where callers go when the agent cannot take the call
  #   transfers:
  #     operator: from-internal,100,1

# Which calls reach which agent; ai-call dialplan generate/install writes the Asterisk side.
# routes:
#   - { context: from-internal, extension: "7000", agent: echo }

# AMI, for outbound calls (ai-call originate, POST /calls) and call control. The secret comes from
# AI_CALL_AMI_SECRET; the manager.conf user is generated as ai-call-manager.conf.
# ami:
#   host: 127.0.0.1
#   username: ai-call
#   outboundContext: from-internal

# log:
#   level: info
EOF
}

secrets_template() {
  cat <<'EOF'
# ai-call secrets, read by systemd (EnvironmentFile of ai-call.service). Keep it root:root 0600.
# One KEY=value per line, no quotes, no spaces around "=". Empty values count as unset.
# After a change: systemctl restart ai-call

# ElevenLabs API key: private agents (signed URLs) and "ai-call agents check".
ELEVENLABS_API_KEY=
# The secret of the AMI user (copy the same value into ai-call-manager.conf). Example: openssl rand -hex 24
AI_CALL_AMI_SECRET=
# Bearer token of the status API's write endpoints (POST /calls, DELETE /calls/ID), 8+ characters.
AI_CALL_STATUS_TOKEN=
EOF
}

wrapper_script() {
  cat <<EOF
#!/bin/sh
${WRAPPER_MARK}
# Runs ${APP_DIR} with the service's configuration (unless -c or AI_CALL_CONFIG says otherwise)
# and, when readable (as root), the secrets in ${ETC_DIR}/secrets.env; variables already set win.
: "\${AI_CALL_CONFIG:=${ETC_DIR}/ai-call.yaml}"
export AI_CALL_CONFIG
if [ -r ${ETC_DIR}/secrets.env ]; then
  while IFS= read -r line || [ -n "\$line" ]; do
    case \$line in '' | '#'*) continue ;; esac
    key=\${line%%=*}
    value=\${line#*=}
    case \$key in '' | [!A-Za-z_]* | *[!A-Za-z0-9_]*) continue ;; esac
    case \$value in \\"*\\") value=\${value#\\"} value=\${value%\\"} ;; \\'*\\') value=\${value#\\'} value=\${value%\\'} ;; esac
    eval "current=\\\${\$key-}"
    if [ -z "\$current" ] && [ -n "\$value" ]; then export "\$key=\$value"; fi
  done <${ETC_DIR}/secrets.env
fi
exec /usr/bin/env node ${APP_DIR}/dist/src/bin/ai-call.js "\$@"
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments.

while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix) [[ $# -ge 2 ]] || die '--prefix needs a directory'; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --lockfile) [[ $# -ge 2 ]] || die '--lockfile needs a file'; LOCKFILE=$2; shift 2 ;;
    --lockfile=*) LOCKFILE=${1#*=}; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --no-start) NO_START=1; shift ;;
    --print-config) default_config; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) [[ -z $PACKAGE ]] || die "one package only (got $PACKAGE and $1)"; PACKAGE=$1; shift ;;
  esac
done
if [[ $# -gt 0 ]]; then
  [[ -z $PACKAGE && $# -eq 1 ]] || die 'one package only'
  PACKAGE=$1
fi

[[ -n $PREFIX ]] || die '--prefix needs a directory'
if [[ $PREFIX != / ]]; then
  [[ $PREFIX == /* ]] || PREFIX="$(pwd)/$PREFIX"
  PREFIX=${PREFIX%/}
fi

# A path on the target system, under --prefix.
target() {
  if [[ $PREFIX == / ]]; then printf '%s' "$1"; else printf '%s%s' "$PREFIX" "$1"; fi
}

quote() {
  local out='' arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $arg"; else out+=" $(printf '%q' "$arg")"; fi
  done
  printf '%s' "${out# }"
}

# Runs a command, or prints it under --dry-run.
run() {
  if [[ $DRY_RUN == 1 ]]; then
    say "[dry-run] run: $(quote "$@")"
  else
    say "run: $(quote "$@")"
    "$@"
  fi
}

# Runs a command that changes the system outside the install tree (users, owners, systemctl):
# never under --prefix.
system_run() {
  if [[ $PREFIX != / ]]; then
    say "[skip] $(quote "$@")   (--prefix: no users, owners or services)"
  else
    run "$@"
  fi
}

# Writes stdin to a file with a mode (atomically), or says it would.
write_file() {
  local path=$1 mode=$2 what=$3 tmp
  if [[ $DRY_RUN == 1 ]]; then
    cat >/dev/null
    say "[dry-run] write: $path ($mode, $what)"
    return 0
  fi
  tmp="$path.tmp.$$"
  (umask 077 && cat >"$tmp")
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
  say "write: $path ($mode, $what)"
}

make_dir() {
  local path=$1 mode=$2
  if [[ -d $path ]]; then
    return 0
  fi
  run mkdir -p -m "$mode" "$path"
}

# ---------------------------------------------------------------------------------------------
# 1. Preconditions.

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unit_source="$script_dir/ai-call.service"
[[ -r $unit_source ]] || die "$unit_source is missing: run the install.sh that came with the package"

if [[ $PREFIX == / && $DRY_RUN == 0 && $EUID -ne 0 ]]; then
  die 'run it as root (sudo), or try it with --dry-run or --prefix DIR'
fi

command -v node >/dev/null 2>&1 || die "Node.js ${MIN_NODE_MAJOR} or newer is needed: no node in PATH"
command -v npm >/dev/null 2>&1 || die 'npm is needed (it comes with Node.js)'
node_version=$(node -p 'process.versions.node')
node_major=${node_version%%.*}
[[ $node_major =~ ^[0-9]+$ && $node_major -ge $MIN_NODE_MAJOR ]] || die "Node.js ${MIN_NODE_MAJOR} or newer is needed; found $node_version"
node_path=$(readlink -f "$(command -v node)")
say "node $node_version at $node_path: ok"
case $node_path in
  /root/* | /home/* | /run/user/*)
    say "warning: $node_path is under a home directory, which the service cannot see (ProtectHome=yes);"
    say "         install Node.js system-wide (e.g. the distribution's or NodeSource's package)" ;;
esac
# sd_booted(3): systemd is PID 1 when /run/systemd/system exists (not in most containers).
systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }
if [[ $PREFIX == / ]] && ! systemd_running; then
  say 'warning: systemd is not running here: the unit is installed but not enabled or started'
fi

# ---------------------------------------------------------------------------------------------
# 2. The package.

checkout=''
if [[ -n $PACKAGE ]]; then
  [[ -f $PACKAGE && -r $PACKAGE ]] || die "$PACKAGE is not a readable file"
  PACKAGE=$(cd "$(dirname "$PACKAGE")" && pwd)/$(basename "$PACKAGE")
  package_json=$(tar -xzOf "$PACKAGE" package/package.json 2>/dev/null) || die "$PACKAGE is not an npm package (no package/package.json)"
else
  checkout=$(dirname "$script_dir")
  [[ -r $checkout/package.json ]] || die "no package given and $checkout is not a checkout of ai-call"
  package_json=$(<"$checkout/package.json")
fi
# shellcheck disable=SC2016 # JavaScript, not shell
package_id=$(node -e '
  const p = JSON.parse(process.argv[1]);
  if (p.name !== "ai-call") { console.error(`package is ${p.name}, not ai-call`); process.exit(1); }
  console.log(`${p.name}@${p.version}`);
' "$package_json") || die 'not the ai-call package'
if [[ -n $checkout ]]; then
  say "package: $package_id from the checkout $checkout"
  [[ -n $LOCKFILE ]] || LOCKFILE="$checkout/package-lock.json"
  if [[ ! -x $checkout/node_modules/.bin/tsc ]]; then
    [[ $DRY_RUN == 1 ]] || die "$checkout has no node_modules: run npm ci there first (npm pack builds dist/), or pass a package made by npm pack"
    say "note: $checkout has no node_modules yet; run npm ci there before installing"
  fi
else
  say "package: $package_id from $PACKAGE"
fi
if [[ -n $LOCKFILE ]]; then
  [[ -r $LOCKFILE ]] || die "lockfile $LOCKFILE is not readable"
  LOCKFILE=$(cd "$(dirname "$LOCKFILE")" && pwd)/$(basename "$LOCKFILE")
fi

app=$(target "$APP_DIR")
staging="$app.new"
previous="$app.previous"
workdir=''
cleanup() {
  [[ -z $workdir ]] || rm -rf "$workdir"
  if [[ $DRY_RUN == 0 && -d $staging ]]; then rm -rf "$staging"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# 3. The service user.

if getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
  say "user $SERVICE_USER: exists"
else
  system_run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
    --comment 'ai-call service' "$SERVICE_USER"
fi

# ---------------------------------------------------------------------------------------------
# 4. /opt/ai-call: unpack, install the runtime dependencies, check, then swap in.

make_dir "$(dirname "$app")" 0755
if [[ $DRY_RUN == 1 ]]; then
  tarball=${PACKAGE:-"TMPDIR/${package_id/@/-}.tgz"}
  [[ -n $PACKAGE ]] || say "[dry-run] run: npm pack --pack-destination TMPDIR   (in $checkout)"
else
  workdir=$(mktemp -d)
  if [[ -n $checkout ]]; then
    say "run: npm pack --pack-destination $workdir   (in $checkout)"
    (cd "$checkout" && npm pack --pack-destination "$workdir" >/dev/null)
    tarball=$(find "$workdir" -maxdepth 1 -name '*.tgz' -print -quit)
    [[ -n $tarball ]] || die 'npm pack produced no package'
  else
    tarball=$PACKAGE
  fi
  rm -rf "$staging"
fi
make_dir "$staging" 0755
run tar -xzf "$tarball" -C "$staging" --strip-components=1 --no-same-owner
npm_flags=(--prefix "$staging" --omit=dev --ignore-scripts --no-audit --no-fund)
if [[ $DRY_RUN == 0 && -f $staging/npm-shrinkwrap.json ]]; then
  run npm ci "${npm_flags[@]}"
elif [[ -n $LOCKFILE ]]; then
  run cp "$LOCKFILE" "$staging/package-lock.json"
  run npm ci "${npm_flags[@]}"
else
  say 'warning: no lockfile (--lockfile): npm install resolves the dependency versions now'
  run npm install --no-package-lock "${npm_flags[@]}"
fi
# The package must run and find its templates before it replaces the running version.
if [[ $DRY_RUN == 1 ]]; then
  say "[dry-run] check: node $staging/dist/src/bin/ai-call.js --help, and dialplan generate (templates found)"
else
  say "check: node $staging/dist/src/bin/ai-call.js --help, and dialplan generate (templates found)"
  node "$staging/dist/src/bin/ai-call.js" --help >/dev/null
  AI_CALL_CONFIG='' node "$staging/dist/src/bin/ai-call.js" dialplan generate --out "$workdir/dialplan-check" >/dev/null
fi
run chmod -R u=rwX,go=rX "$staging"
if [[ -e $app ]]; then
  [[ ! -e $previous ]] || run rm -rf "$previous"
  run mv "$app" "$previous"
fi
run mv "$staging" "$app"

# ---------------------------------------------------------------------------------------------
# 5. The admin command.

wrapper=$(target "$WRAPPER")
make_dir "$(dirname "$wrapper")" 0755
if [[ -e $wrapper ]] && ! grep -qF "$WRAPPER_MARK" "$wrapper"; then
  say "keep: $wrapper is not ours (another ai-call install?); use $APP_DIR/dist/src/bin/ai-call.js"
else
  wrapper_script | write_file "$wrapper" 0755 'the ai-call command'
fi

# ---------------------------------------------------------------------------------------------
# 6. /etc/ai-call: configuration and secrets, only if missing.

etc=$(target "$ETC_DIR")
make_dir "$etc" 0750
system_run chown "root:$SERVICE_USER" "$ETC_DIR"
config="$etc/ai-call.yaml"
if [[ -e $config ]]; then
  say "keep: $config (exists)"
else
  default_config | write_file "$config" 0640 'default configuration'
  system_run chown "root:$SERVICE_USER" "$ETC_DIR/ai-call.yaml"
fi
secrets="$etc/secrets.env"
if [[ -e $secrets ]]; then
  say "keep: $secrets (exists)"
  mode=$(stat -c '%a' "$secrets")
  [[ $mode == 600 || $mode == 400 ]] || run chmod 0600 "$secrets"
else
  secrets_template | write_file "$secrets" 0600 'secrets template: fill it in'
fi

state=$(target "$STATE_DIR")
make_dir "$state" 0750
system_run chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"

# ---------------------------------------------------------------------------------------------
# 7. The systemd unit.

unit=$(target "$UNIT_FILE")
make_dir "$(dirname "$unit")" 0755
if [[ -f $unit ]] && cmp -s "$unit_source" "$unit"; then
  say "keep: $unit (unchanged)"
else
  write_file "$unit" 0644 'systemd unit' <"$unit_source"
fi
if [[ $PREFIX == / ]] && ! systemd_running; then
  say "warning: systemd is not running here: enable and start $SERVICE.service yourself"
else
  system_run systemctl daemon-reload
  system_run systemctl enable "$SERVICE.service"
  if [[ $NO_START == 1 ]]; then
    say "not started (--no-start)"
  else
    # restart: starts it, or moves a running service onto the new version (live calls get --grace-ms).
    system_run systemctl restart "$SERVICE.service"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 8. Next steps.

cat <<EOF

$package_id $([[ $DRY_RUN == 1 ]] && printf 'would be installed (dry run: nothing was changed)' || printf 'installed')$([[ $PREFIX != / ]] && printf ' under %s' "$PREFIX").
Next steps (docs/admin-guide.md):
  1. Edit $ETC_DIR/ai-call.yaml (agents, routes) and $ETC_DIR/secrets.env; check with
       ai-call check-config
  2. Write the Asterisk files and reload the dialplan (ai-call never edits your own files):
       ai-call dialplan install --asterisk-dir /etc/asterisk --reload
     then add the include lines it prints (extensions.conf, manager.conf, modules.conf).
  3. systemctl restart $SERVICE && systemctl status $SERVICE
     curl -s http://127.0.0.1:9093/healthz
  4. First call without a phone: ai-call simulate --agent echo
EOF
