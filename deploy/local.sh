#!/usr/bin/env bash
# Local infrastructure without Docker: RabbitMQ, the embedded MongoDB-wire
# server (mongo-java-server on its persistent H2 backend, deploy/mongo-server),
# an SMTP catcher and Dovecot IMAP, all on 127.0.0.1, all state under
# $ROOT/.local/ (git-ignored).
#
#   deploy/local.sh install   install/build what is missing (apt, mvn package)
#   deploy/local.sh up [COMPONENT...]
#                             start whatever is not running, wait until ready
#   deploy/local.sh down [COMPONENT...]
#                             stop everything (or those) gracefully; data is kept
#   deploy/local.sh status    one line per component; exit 3 if any is down
#   deploy/local.sh restart [COMPONENT...]
#                             stop and start rabbitmq, mongodb, smtp or imap (all
#                             by default); the fault-injection tests use it
#   deploy/local.sh kill COMPONENT
#                             SIGKILL mongodb, rabbitmq or smtp (no chance to flush);
#                             `up` starts it again
#   deploy/local.sh env       export lines: eval "$(deploy/local.sh env)"
#   deploy/local.sh rabbitmqctl|rabbitmq-diagnostics|rabbitmq-queues ARGS...
#                             run a RabbitMQ CLI against the local node
#
# Ports: AMQP 5672, MongoDB wire 27017, SMTP 1025, IMAP 10143 (plus Erlang's
# epmd 4369 and distribution 25672, loopback only). Every command is
# idempotent. Needs root for `install` (apt) and for Dovecot.
#
# Environment: LOCAL_PYTHON (default .venv/bin/python, runs the SMTP catcher
# and readiness probes), LOCAL_READY_TIMEOUT (seconds per component, default
# 90), LOCAL_TAKEOVER=1 (stop another checkout's instance that holds one of
# the ports instead of failing; .ci/run sets it). A second, private instance
# (the fault-injection tests start one) takes LOCAL_DIR for its state and
# LOCAL_AMQP_PORT, LOCAL_DIST_PORT, LOCAL_MONGO_PORT, LOCAL_SMTP_PORT,
# LOCAL_IMAP_PORT and LOCAL_RABBIT_NODE (node name) so it shares nothing.
# LOCAL_MONGO_HEAP (384m) and LOCAL_MONGO_CACHE_MB (48) size the embedded database;
# LOCAL_MONGO_SCAN_LOG=1 makes it print, every 10 s, the filters it may have scanned for.
set -euo pipefail
set +m # background jobs must stay in our process group so setsid never forks

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SELF")/.." && pwd)"
LOCAL="${LOCAL_DIR:-$ROOT/.local}"
BIN="$ROOT/.local/bin" # built once, shared by every instance
PY="${LOCAL_PYTHON:-$ROOT/.venv/bin/python}"
READY_TIMEOUT="${LOCAL_READY_TIMEOUT:-90}"

HOST=127.0.0.1
AMQP_PORT="${LOCAL_AMQP_PORT:-5672}"
ERL_DIST_PORT="${LOCAL_DIST_PORT:-25672}"
MONGO_PORT="${LOCAL_MONGO_PORT:-27017}"
SMTP_PORT="${LOCAL_SMTP_PORT:-1025}"
IMAP_PORT="${LOCAL_IMAP_PORT:-10143}"
RABBIT_NODE="${LOCAL_RABBIT_NODE:-rabbit}@localhost"
IMAP_USER=sync@firm.test
IMAP_PASSWORD=sync-secret

RABBIT_BIN=/usr/lib/rabbitmq/bin # the real scripts, not Debian's su-to-rabbitmq wrappers
RABBIT_DIR="$LOCAL/rabbitmq"
MONGO_DIR="$LOCAL/mongodb"
SMTP_DIR="$LOCAL/smtp"
DOVECOT_DIR="$LOCAL/dovecot"
MONGO_SRC="$ROOT/deploy/mongo-server"
MONGO_BUILD="$BIN/mongo-server" # the launcher jar and its libraries
MONGO_HEAP="${LOCAL_MONGO_HEAP:-384m}"
MONGO_CACHE_MB="${LOCAL_MONGO_CACHE_MB:-48}" # the H2 store's page cache, inside the heap

COMPONENTS=(rabbitmq mongodb smtp imap)

# ---------------------------------------------------------------- helpers

log() { printf '==> %s\n' "$*"; }
warn() { printf 'local.sh: %s\n' "$*" >&2; }
die() {
  warn "$*"
  exit 1
}

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root to run: $*"
  fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# banner_is PORT PREFIX: the server greets with a line starting with PREFIX.
banner_is() {
  local line=""
  { exec 3<>"/dev/tcp/$HOST/$1"; } 2>/dev/null || return 1
  IFS= read -r -t 3 line <&3 || true
  exec 3<&- 3>&-
  [[ "$line" == "$2"* ]]
}

# pid_alive PIDFILE PATTERN: the recorded process exists and its command line
# matches PATTERN (so a recycled pid after a reboot is never mistaken for ours).
pid_alive() {
  local pid cmdline
  [[ -s "$1" ]] || return 1
  pid="$(<"$1")"
  proc_running "$pid" || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *"$2"* ]]
}

# proc_running PID: the process exists and is not a zombie.
proc_running() {
  local stat
  [[ "$1" =~ ^[0-9]+$ ]] || return 1
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

port_owner() {
  command -v ss >/dev/null || return 0
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:(\(.*\))/\1/p' | head -n 1
}

# spawn PIDFILE LOGFILE CMD...: start CMD detached (own session, no stdin).
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  nohup setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo "$!" >"$pidfile"
}

# fail NAME LOGFILE... : explain a failed start and show the end of its logs.
fail() {
  local name="$1" f
  shift
  warn "$name did not become ready; last log lines:"
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    printf -- '----- %s\n' "$f" >&2
    tail -n 30 "$f" >&2
  done
  exit 1
}

# await NAME PIDFILE CHECK LOGFILE...: poll CHECK until it succeeds, failing
# early if the process dies. (Not pid_alive: right after the fork the child's
# command line is still ours, so its pattern would not match yet.)
await() {
  local name="$1" pidfile="$2" check="$3"
  shift 3
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$check"; do
    proc_running "$(<"$pidfile")" || {
      warn "$name exited during start-up"
      fail "$name" "$@"
    }
    ((SECONDS < deadline)) || {
      warn "$name not ready after ${READY_TIMEOUT}s"
      fail "$name" "$@"
    }
    sleep 0.5
  done
}

# stop_pid NAME PIDFILE PATTERN: SIGTERM, wait up to 30 s, SIGKILL as a last resort.
stop_pid() {
  local name="$1" pidfile="$2" pattern="$3" pid i
  if pid_alive "$pidfile" "$pattern"; then
    pid="$(<"$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      pid_alive "$pidfile" "$pattern" || break
      sleep 0.5
    done
    if pid_alive "$pidfile" "$pattern"; then
      warn "$name ignored SIGTERM for 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# other_checkout PORT: print the root of another checkout whose local.sh
# infrastructure holds PORT (fails if the holder is anything else).
other_checkout() {
  local listener pid cmdline root=""
  command -v ss >/dev/null || return 1
  listener="$(ss -ltnpH "sport = :$1" 2>/dev/null)" || return 1
  # Every process sharing the socket is listed (Dovecot's login processes too, whose
  # command lines name no checkout): look at each until one names its checkout.
  while [[ -z "$root" && "$listener" =~ pid=([0-9]+)(.*) ]]; do
    pid="${BASH_REMATCH[1]}"
    listener="${BASH_REMATCH[2]}"
    [[ -r "/proc/$pid/cmdline" ]] || continue
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    if [[ "$cmdline" =~ (/[^ ]*)/\.local/(bin/mongo-server|rabbitmq|dovecot/) ]]; then
      root="${BASH_REMATCH[1]}"
    elif [[ "$cmdline" =~ (/[^ ]*)/deploy/smtp_catcher\.py ]]; then
      root="${BASH_REMATCH[1]}"
    fi
  done
  [[ -n "$root" && "$root" != "$ROOT" && -f "$root/deploy/local.sh" ]] || return 1
  printf '%s' "$root"
}

# claim_port NAME PORT COMPONENT: the port is taken by something local.sh (of
# this checkout) did not start. Another checkout's instance is stopped when
# LOCAL_TAKEOVER=1 (CI sets it); anything else is left alone and we stop.
claim_port() {
  local name="$1" port="$2" component="$3" other owner
  if other="$(other_checkout "$port")"; then
    [[ "${LOCAL_TAKEOVER:-}" == 1 ]] ||
      die "$name: 127.0.0.1:$port is held by the local infrastructure of $other; stop it with '$other/deploy/local.sh down' (or set LOCAL_TAKEOVER=1)"
    log "$name: stopping the instance of $other that holds port $port (LOCAL_TAKEOVER=1)"
    bash "$other/deploy/local.sh" __down "$component" || bash "$other/deploy/local.sh" down || true
    ! port_open "$port" || die "$name: 127.0.0.1:$port is still in use after stopping $other's instance"
    return 0
  fi
  owner="$(port_owner "$port")"
  die "$name: 127.0.0.1:$port is already in use by a process local.sh did not start${owner:+, held by $owner}; stop it and run 'deploy/local.sh up' again"
}

need_python() {
  [[ -x "$PY" ]] || die "$PY not found: run 'make venv' first (or set LOCAL_PYTHON)"
}

# ---------------------------------------------------------------- install

install_apt_packages() {
  local missing=() policy=/usr/sbin/policy-rc.d created_policy=""
  [[ -x "$RABBIT_BIN/rabbitmq-server" ]] || missing+=(rabbitmq-server)
  [[ -x /usr/sbin/dovecot && -x /usr/lib/dovecot/imap ]] || missing+=(dovecot-imapd)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium) # the portal's browser tests
  if ((${#missing[@]} == 0)); then
    log "apt packages present: rabbitmq-server dovecot-imapd chromium"
    return
  fi
  local p
  for p in "${missing[@]}"; do log "installing $p"; done
  # Keep the packages' own system services from starting (and taking our
  # ports) during installation; we run our own instances.
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    created_policy=1
  fi
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  [[ -z "$created_policy" ]] || as_root rm -f "$policy"
}

mongo_server_up_to_date() {
  local f
  [[ -s "$MONGO_BUILD/embedded-mongo.jar" && -d "$MONGO_BUILD/lib" ]] || return 1
  while IFS= read -r -d '' f; do
    [[ "$MONGO_BUILD/embedded-mongo.jar" -nt "$f" ]] || return 1
  done < <(find "$MONGO_SRC/pom.xml" "$MONGO_SRC/src" -type f -print0)
}

build_mongo_server() {
  if mongo_server_up_to_date; then
    log "embedded MongoDB server up to date: $MONGO_BUILD"
    return
  fi
  command -v mvn >/dev/null || die "Maven not found; the embedded MongoDB server is built with it (Java 17)"
  command -v java >/dev/null || die "Java (>= 17) not found; the embedded MongoDB server runs on it"
  log "building the embedded MongoDB server (mongo-java-server 1.47, H2 backend) into $MONGO_BUILD"
  # Maven builds into deploy/mongo-server/target (git-ignored); keep only the result.
  mvn -q -B -f "$MONGO_SRC/pom.xml" package -DskipTests || die "building the embedded MongoDB server failed"
  rm -rf "$MONGO_BUILD" && mkdir -p "$MONGO_BUILD"
  cp "$MONGO_SRC/target/embedded-mongo.jar" "$MONGO_BUILD/"
  cp -r "$MONGO_SRC/target/lib" "$MONGO_BUILD/lib"
}

cmd_install() {
  install_apt_packages
  build_mongo_server
  log "install done"
}

# ---------------------------------------------------------------- rabbitmq

# Runs in a subshell (callers use `( rabbit_env; ... )`) so nothing leaks.
rabbit_env() {
  export HOME="$RABBIT_DIR" # .erlang.cookie lives here, shared by server and CLI
  export RABBITMQ_NODENAME="$RABBIT_NODE"
  export RABBITMQ_NODE_IP_ADDRESS="$HOST"
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="$ERL_DIST_PORT"
  export RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
  export RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
  export RABBITMQ_PID_FILE="$RABBIT_DIR/beam.pid"
  export ERL_EPMD_ADDRESS="$HOST"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbit_cli() { (rabbit_env && cd "$RABBIT_DIR" && "$RABBIT_BIN/$1" "${@:2}"); }

rabbit_write_config() {
  mkdir -p "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
  cat >"$RABBIT_DIR/rabbitmq.conf" <<'EOF'
# generated by deploy/local.sh (rewritten on every `up`)
# listener address/port come from RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
EOF
  echo '[].' >"$RABBIT_DIR/enabled_plugins"
  : >"$RABBIT_DIR/rabbitmq-env.conf"
  if [[ ! -s "$RABBIT_DIR/.erlang.cookie" ]]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RABBIT_DIR/.erlang.cookie"
    chmod 400 "$RABBIT_DIR/.erlang.cookie"
  fi
}

rabbit_running() { pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server && port_open "$AMQP_PORT"; }

rabbit_ready() {
  port_open "$AMQP_PORT" &&
    rabbit_cli rabbitmq-diagnostics -q ping >/dev/null 2>&1 &&
    rabbit_cli rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1
}

up_rabbitmq() {
  if rabbit_running; then
    log "rabbitmq already running (pid $(<"$RABBIT_DIR/server.pid"))"
    return
  fi
  [[ -x "$RABBIT_BIN/rabbitmq-server" ]] || die "rabbitmq-server not installed: run 'deploy/local.sh install'"
  if ! pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server; then
    if port_open "$AMQP_PORT"; then claim_port rabbitmq "$AMQP_PORT" rabbitmq; fi
    rabbit_write_config
    port_open 4369 || touch "$RABBIT_DIR/epmd.started-by-us"
    log "starting rabbitmq on $HOST:$AMQP_PORT (node $RABBIT_NODE)"
    # As root we call /usr/lib/rabbitmq/bin/rabbitmq-server directly: the
    # /usr/sbin wrapper would `su rabbitmq` and log to /var/log/rabbitmq.
    (rabbit_env && cd "$RABBIT_DIR" &&
      spawn "$RABBIT_DIR/server.pid" "$RABBIT_DIR/log/startup.log" "$RABBIT_BIN/rabbitmq-server")
  fi
  await rabbitmq "$RABBIT_DIR/server.pid" rabbit_ready \
    "$RABBIT_DIR/log/startup.log" "$RABBIT_DIR/log/$RABBIT_NODE.log"
  # integration.events keeps what no queue is bound for (docs/contracts.md): a policy, idempotent.
  rabbit_cli rabbitmqctl -q set_policy -p / --apply-to exchanges integration-events-alternate-exchange \
    '^integration\.events$' '{"alternate-exchange":"integration.unroutable"}' >/dev/null ||
    warn "could not set the alternate-exchange policy of integration.events"
  log "rabbitmq ready: amqp://guest:guest@$HOST:$AMQP_PORT/"
}

down_rabbitmq() {
  if pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server; then
    log "stopping rabbitmq"
    # `shutdown` stops the node and waits for its OS process to exit.
    rabbit_cli rabbitmqctl -q shutdown >/dev/null 2>&1 || warn "rabbitmqctl shutdown failed; sending SIGTERM"
  fi
  stop_pid rabbitmq "$RABBIT_DIR/server.pid" rabbitmq-server
  stop_pid "rabbitmq (beam)" "$RABBIT_DIR/beam.pid" beam
  # epmd outlives the node; stop it only if we started it and nobody uses it.
  if [[ -e "$RABBIT_DIR/epmd.started-by-us" ]] && command -v epmd >/dev/null; then
    local names
    names="$(ERL_EPMD_ADDRESS="$HOST" epmd -names 2>/dev/null)" || names=""
    if [[ "$names" != *$'\n'"name "* ]]; then
      ERL_EPMD_ADDRESS="$HOST" epmd -kill >/dev/null 2>&1 || true
    fi
    rm -f "$RABBIT_DIR/epmd.started-by-us"
  fi
}

# ---------------------------------------------------------------- mongodb (embedded)

mongo_running() { pid_alive "$MONGO_DIR/mongodb.pid" crm.embedded.Main && port_open "$MONGO_PORT"; }

mongo_ready() {
  port_open "$MONGO_PORT" || return 1
  [[ -x "$PY" ]] || return 0 # no venv yet: the open port has to do
  "$PY" - "mongodb://$HOST:$MONGO_PORT/" <<'EOF' >/dev/null 2>&1
import sys
import pymongo
client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000)
client.admin.command("ping")
EOF
}

up_mongodb() {
  if mongo_running; then
    log "mongodb already running (pid $(<"$MONGO_DIR/mongodb.pid"))"
    return
  fi
  [[ -s "$MONGO_BUILD/embedded-mongo.jar" ]] || die "the embedded MongoDB server is not built: run 'deploy/local.sh install'"
  if ! pid_alive "$MONGO_DIR/mongodb.pid" crm.embedded.Main; then
    if port_open "$MONGO_PORT"; then claim_port mongodb "$MONGO_PORT" mongodb; fi
    mkdir -p "$MONGO_DIR/data"
    log "starting the embedded mongodb on $HOST:$MONGO_PORT (H2 store in $MONGO_DIR/data)"
    # Serial GC and a fixed heap keep the JVM within about 512 MB on a small machine.
    spawn "$MONGO_DIR/mongodb.pid" "$MONGO_DIR/mongodb.log" \
      java "-Xmx$MONGO_HEAP" "-Dcrm.cacheMb=$MONGO_CACHE_MB" -XX:+UseSerialGC -Xss512k -XX:MaxDirectMemorySize=64m \
      -XX:ReservedCodeCacheSize=64m -XX:MaxMetaspaceSize=96m -Dio.netty.allocator.numDirectArenas=2 \
      -Dorg.slf4j.simpleLogger.defaultLogLevel=warn "-Dcrm.scanlog=${LOCAL_MONGO_SCAN_LOG:-0}" \
      -Dorg.slf4j.simpleLogger.log.de.bwaldvogel.mongo.backend.AbstractMongoDatabase=error \
      -cp "$MONGO_BUILD/embedded-mongo.jar:$MONGO_BUILD/lib/*" crm.embedded.Main \
      --host "$HOST" --port "$MONGO_PORT" --data "$MONGO_DIR/data/store.mv"
  fi
  await mongodb "$MONGO_DIR/mongodb.pid" mongo_ready "$MONGO_DIR/mongodb.log"
  log "mongodb ready: mongodb://$HOST:$MONGO_PORT/"
}

down_mongodb() { stop_pid mongodb "$MONGO_DIR/mongodb.pid" crm.embedded.Main; }

# ---------------------------------------------------------------- smtp catcher

smtp_running() { pid_alive "$SMTP_DIR/smtp.pid" smtp_catcher && port_open "$SMTP_PORT"; }
smtp_ready() { banner_is "$SMTP_PORT" 220; }

up_smtp() {
  if smtp_running; then
    log "smtp catcher already running (pid $(<"$SMTP_DIR/smtp.pid"))"
    return
  fi
  need_python
  if ! pid_alive "$SMTP_DIR/smtp.pid" smtp_catcher; then
    if port_open "$SMTP_PORT"; then claim_port smtp "$SMTP_PORT" smtp; fi
    mkdir -p "$SMTP_DIR/inbox"
    log "starting smtp catcher on $HOST:$SMTP_PORT (messages in $SMTP_DIR/inbox)"
    spawn "$SMTP_DIR/smtp.pid" "$SMTP_DIR/smtp.log" \
      "$PY" "$ROOT/deploy/smtp_catcher.py" --host "$HOST" --port "$SMTP_PORT" --dir "$SMTP_DIR/inbox"
  fi
  await smtp "$SMTP_DIR/smtp.pid" smtp_ready "$SMTP_DIR/smtp.log"
  log "smtp catcher ready: smtp://$HOST:$SMTP_PORT"
}

down_smtp() { stop_pid "smtp catcher" "$SMTP_DIR/smtp.pid" smtp_catcher; }

# ---------------------------------------------------------------- dovecot imap

dovecot_base_dir() {
  # Unix socket paths are limited to ~107 bytes; keep sockets short.
  local dir="$DOVECOT_DIR/run"
  if ((${#dir} > 70)); then
    dir="${TMPDIR:-/tmp}/crm-dovecot-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
  fi
  printf '%s' "$dir"
}

dovecot_write_config() {
  local base mail="$DOVECOT_DIR/mail"
  base="$(dovecot_base_dir)"
  mkdir -p "$DOVECOT_DIR/state" "$mail" "$base"
  # Mail is accessed as nobody:nogroup: Dovecot refuses mail access as uid 0.
  chown nobody:nogroup "$mail"
  chmod 700 "$mail"
  runuser -u nobody -g nogroup -- test -w "$mail" ||
    die "imap: user nobody cannot write $mail (a parent directory is not traversable)"
  touch "$DOVECOT_DIR/users"
  chgrp dovecot "$DOVECOT_DIR/users" # read by the auth process (user dovecot)
  chmod 640 "$DOVECOT_DIR/users"
  # Keep extra users a test may have added; make sure the test user exists.
  grep -q "^$IMAP_USER:" "$DOVECOT_DIR/users" ||
    printf '%s:{PLAIN}%s::::::\n' "$IMAP_USER" "$IMAP_PASSWORD" >>"$DOVECOT_DIR/users"
  cat >"$DOVECOT_DIR/dovecot.conf" <<EOF
# generated by deploy/local.sh (rewritten on every \`up\`); users: $DOVECOT_DIR/users
# Add a user by appending a line "name:{PLAIN}password::::::" to that file.
base_dir = $base
state_dir = $DOVECOT_DIR/state
instance_name = crm-local-dovecot
protocols = imap
listen = $HOST
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = $DOVECOT_DIR/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:$mail/%u
mail_max_userip_connections = 1000

namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
}

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DOVECOT_DIR/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$mail/%u
}

service imap-login {
  inet_listener imap {
    address = $HOST
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
}

imap_running() { pid_alive "$DOVECOT_DIR/dovecot.pid" dovecot && port_open "$IMAP_PORT"; }
imap_ready() {
  banner_is "$IMAP_PORT" '* OK' || return 1
  [[ -x "$PY" ]] || return 0 # no venv yet: the greeting has to do
  # A real login proves the passdb, the userdb and the mail directory work.
  "$PY" - "$HOST" "$IMAP_PORT" "$IMAP_USER" "$IMAP_PASSWORD" <<'EOF' >/dev/null 2>&1
import imaplib
import sys
imap = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=5)
imap.login(sys.argv[3], sys.argv[4])
imap.select("INBOX")
imap.logout()
EOF
}

up_imap() {
  if imap_running; then
    log "dovecot already running (pid $(<"$DOVECOT_DIR/dovecot.pid"))"
    return
  fi
  [[ -x /usr/sbin/dovecot ]] || die "dovecot not installed: run 'deploy/local.sh install'"
  ((EUID == 0)) || die "imap: the local Dovecot setup runs as root (as on dev machines and CI)"
  if ! pid_alive "$DOVECOT_DIR/dovecot.pid" dovecot; then
    if port_open "$IMAP_PORT"; then claim_port imap "$IMAP_PORT" imap; fi
    dovecot_write_config
    log "starting dovecot on $HOST:$IMAP_PORT (user $IMAP_USER)"
    spawn "$DOVECOT_DIR/dovecot.pid" "$DOVECOT_DIR/startup.log" \
      /usr/sbin/dovecot -F -c "$DOVECOT_DIR/dovecot.conf"
  fi
  await imap "$DOVECOT_DIR/dovecot.pid" imap_ready \
    "$DOVECOT_DIR/startup.log" "$DOVECOT_DIR/dovecot.log"
  log "dovecot ready: imap://$HOST:$IMAP_PORT"
}

down_imap() { stop_pid dovecot "$DOVECOT_DIR/dovecot.pid" dovecot; }

# ---------------------------------------------------------------- commands

cmd_up() {
  local c failed=()
  (($#)) || set -- "${COMPONENTS[@]}"
  mkdir -p "$LOCAL"
  # Each component starts in its own process so one failure (e.g. a port
  # taken by something else) does not keep the others from starting.
  for c in "$@"; do
    bash "$SELF" __up "$c" || failed+=("$c")
  done
  if ((${#failed[@]})); then
    die "failed to start: ${failed[*]}"
  fi
  log "all up; for the environment run: eval \"\$(deploy/local.sh env)\""
}

cmd_down() {
  local i rc=0
  (($#)) || set -- "${COMPONENTS[@]}"
  local order=("$@")
  for ((i = ${#order[@]} - 1; i >= 0; i--)); do
    bash "$SELF" __down "${order[i]}" || rc=1
  done
  return "$rc"
}

cmd_restart() {
  local c
  (($#)) || set -- "${COMPONENTS[@]}"
  for c in "$@"; do
    case "$c" in
      rabbitmq | mongodb | smtp | imap) ;;
      *) die "restart: unknown component '$c' (one of: ${COMPONENTS[*]})" ;;
    esac
    bash "$SELF" __down "$c" && bash "$SELF" __up "$c" || die "restart of $c failed"
  done
}

# cmd_kill COMPONENT: SIGKILL its process (a crash, for the fault tests).
cmd_kill() {
  local pidfile pattern
  case "${1:-}" in
    mongodb) pidfile="$MONGO_DIR/mongodb.pid" pattern=crm.embedded.Main ;;
    rabbitmq) pidfile="$RABBIT_DIR/beam.pid" pattern=beam ;;
    smtp) pidfile="$SMTP_DIR/smtp.pid" pattern=smtp_catcher ;;
    *) die "kill: one of mongodb, rabbitmq, smtp" ;;
  esac
  pid_alive "$pidfile" "$pattern" || die "kill: $1 is not running"
  log "killing $1 (pid $(<"$pidfile"), SIGKILL)"
  kill -KILL "$(<"$pidfile")"
  while pid_alive "$pidfile" "$pattern"; do sleep 0.1; done
}

cmd_status() {
  local rc=0
  status_line rabbitmq rabbit_running "$RABBIT_DIR/server.pid" "amqp://$HOST:$AMQP_PORT/" || rc=3
  status_line mongodb mongo_running "$MONGO_DIR/mongodb.pid" "mongodb://$HOST:$MONGO_PORT/" || rc=3
  status_line smtp smtp_running "$SMTP_DIR/smtp.pid" "smtp://$HOST:$SMTP_PORT" || rc=3
  status_line imap imap_running "$DOVECOT_DIR/dovecot.pid" "imap://$HOST:$IMAP_PORT" || rc=3
  return "$rc"
}

status_line() {
  local name="$1" check="$2" pidfile="$3" url="$4"
  if "$check"; then
    printf '%-9s running  pid %-8s %s\n' "$name" "$(<"$pidfile")" "$url"
  else
    printf '%-9s stopped\n' "$name"
    return 1
  fi
}

cmd_env() {
  local name value
  while IFS='=' read -r name value; do
    printf 'export %s=%q\n' "$name" "$value"
  done <<EOF
RABBITMQ_URL=amqp://guest:guest@$HOST:$AMQP_PORT/
MONGODB_URL=mongodb://$HOST:$MONGO_PORT/
SMTP_HOST=$HOST
SMTP_PORT=$SMTP_PORT
SMTP_CATCHER_DIR=$SMTP_DIR/inbox
IMAP_HOST=$HOST
IMAP_PORT=$IMAP_PORT
IMAP_TEST_USER=$IMAP_USER
IMAP_TEST_PASSWORD=$IMAP_PASSWORD
EOF
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"
  exit 2
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_up "${@:2}" ;;
    down) cmd_down "${@:2}" ;;
    status) cmd_status ;;
    restart) cmd_restart "${@:2}" ;;
    kill) cmd_kill "${@:2}" ;;
    env) cmd_env ;;
    rabbitmqctl | rabbitmq-diagnostics | rabbitmq-queues | rabbitmq-plugins)
      rabbit_cli "$cmd" "${@:2}"
      ;;
    __up | __down)
      case "${2:-}" in
        rabbitmq | mongodb | smtp | imap) "${cmd#__}_$2" ;;
        *) usage ;;
      esac
      ;;
    *) usage ;;
  esac
}

main "$@"
