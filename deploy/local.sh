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
#   deploy/local.sh env       export lines: eval "$(deploy/local.sh env)"; RABBITMQ_URL is
#                             the guest administrator (loopback only), CRM_RABBITMQ_URL,
#                             IDENTITY_..., NOTIFICATION_..., MAILSYNC_..., CRMCTL_... each
#                             service's and the staff CLI's own user (created on `up`)
#   deploy/local.sh rabbitmqctl|rabbitmq-diagnostics|rabbitmq-queues ARGS...
#                             run a RabbitMQ CLI against the local node (in a cluster:
#                             the first running node, or LOCAL_RABBIT_CLI_NODE=N)
#
# A RabbitMQ cluster instead of the single node (details in the rabbitmq section):
#
#   LOCAL_RABBIT_NODES=3 deploy/local.sh up rabbitmq
#                             three clustered nodes on loopback, AMQP 5672-5674; later
#                             commands remember the cluster until `down rabbitmq`. `env`
#                             prints RABBITMQ_URL with every node, comma-separated
#   deploy/local.sh up|down|restart|kill rabbitmq-N
#                             one node of the cluster (`status` shows each)
#   deploy/local.sh partition|heal rabbitmq-N
#                             cut one node off the network, from its peers and its
#                             clients, or reconnect it (a cluster started with
#                             LOCAL_RABBIT_NETNS=1: each node in a network namespace)
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
# LOCAL_IMAP_PORT and LOCAL_RABBIT_NODE (node name) so it shares nothing; with a
# cluster, the ports are the first node's and the next nodes take the ones after.
# LOCAL_MONGO_HEAP (352m) and LOCAL_MONGO_CACHE_MB (48) size the embedded database;
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
IMAP_USER=sync@firm.test
IMAP_PASSWORD=sync-secret

RABBIT_BIN=/usr/lib/rabbitmq/bin # the real scripts, not Debian's su-to-rabbitmq wrappers
MONGO_DIR="$LOCAL/mongodb"
SMTP_DIR="$LOCAL/smtp"
DOVECOT_DIR="$LOCAL/dovecot"
MONGO_SRC="$ROOT/deploy/mongo-server"
MONGO_BUILD="$BIN/mongo-server" # the launcher jar and its libraries
MONGO_HEAP="${LOCAL_MONGO_HEAP:-352m}"
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

port_open() { port_open_at "$HOST" "$1"; }
port_open_at() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

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
    # [^ :]: a Java class path (a:b) names the checkout in each of its entries.
    if [[ "$cmdline" =~ (/[^ :]*)/\.local/(bin/mongo-server|rabbitmq|dovecot/) ]]; then
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

# One node by default. LOCAL_RABBIT_NODES=3 (5, 7: an odd count keeps a majority when
# a node is lost) runs a cluster instead: nodes <LOCAL_RABBIT_NODE>-1..N (rabbit-1...),
# AMQP ports LOCAL_AMQP_PORT+0.., distribution ports LOCAL_DIST_PORT+0.., data under
# rabbitmq-cluster/node-N of the state folder, one Erlang cookie. The first `up` joins
# them (join_cluster); quorum queues get a member on every node (quorum_cluster_size),
# and a node cut off from the majority pauses until it sees it again (pause_minority).
# The cluster is remembered in rabbitmq-cluster/cluster.env until `down rabbitmq`, so
# later commands need no LOCAL_RABBIT_NODES. LOCAL_RABBIT_NETNS=1 (root) puts each node
# in a network namespace of its own on a private bridge, $RABBIT_NET.0/24
# (LOCAL_RABBIT_NET, default 10.231.X with X from the state folder), instead of on
# loopback: `partition rabbitmq-N` then cuts that node off, from its peers and its clients.

CLUSTER_DIR="$LOCAL/rabbitmq-cluster"
CLUSTER_ENV="$CLUSTER_DIR/cluster.env"
RABBIT_BASE_NAME="${LOCAL_RABBIT_NODE:-rabbit}"
# Seconds without a word from a peer before Erlang declares it down (its default: 60). Quorum
# queues led by a node that is cut off wait for that to elect another leader: with 15 they
# resume in ~20 s, and the cut-off node pauses (pause_minority) as soon.
NET_TICKTIME=15

# rabbit_mode: RABBIT_NODES, RABBIT_NETNS, RABBIT_NET from the recorded cluster, else
# from the environment. RECORDED_NODES is set when a cluster is recorded.
rabbit_mode() {
  local key value
  RECORDED_NODES="" RABBIT_NETNS=0 RABBIT_NET=""
  if [[ -s "$CLUSTER_ENV" ]]; then
    while IFS='=' read -r key value; do
      case "$key" in
        NODES) RECORDED_NODES="$value" ;;
        NETNS) RABBIT_NETNS="$value" ;;
        NET) RABBIT_NET="$value" ;;
      esac
    done <"$CLUSTER_ENV"
  fi
  if [[ -n "$RECORDED_NODES" ]]; then
    RABBIT_NODES="$RECORDED_NODES"
    return
  fi
  RABBIT_NODES="${LOCAL_RABBIT_NODES:-1}"
  [[ "$RABBIT_NODES" =~ ^[1357]$ ]] ||
    die "LOCAL_RABBIT_NODES must be 1, 3, 5 or 7 (an odd count keeps a majority when a node is lost), not '$RABBIT_NODES'"
  RABBIT_NETNS="${LOCAL_RABBIT_NETNS:-0}"
  [[ "$RABBIT_NETNS" =~ ^[01]$ ]] || die "LOCAL_RABBIT_NETNS must be 0 or 1, not '$RABBIT_NETNS'"
  ((RABBIT_NETNS == 0 || RABBIT_NODES > 1)) || die "LOCAL_RABBIT_NETNS=1 needs LOCAL_RABBIT_NODES=3 (or 5, 7)"
  RABBIT_NET="${LOCAL_RABBIT_NET:-10.231.$(($(printf '%s' "$LOCAL" | cksum | cut -d' ' -f1) % 200 + 20))}"
  [[ "$RABBIT_NET" =~ ^10\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "LOCAL_RABBIT_NET must look like 10.231.7, not '$RABBIT_NET'"
}

is_cluster() { ((RABBIT_NODES > 1)); }

# select_node N: the RabbitMQ node the functions below work on (0: the single node).
select_node() {
  RABBIT_INDEX="$1"
  if (($1 == 0)); then
    RABBIT_DIR="$LOCAL/rabbitmq" RABBIT_HOME="$LOCAL/rabbitmq" RABBIT_LABEL=rabbitmq
    RABBIT_NODE="$RABBIT_BASE_NAME@localhost" NODE_HOST="$HOST" NODE_NS=""
    NODE_AMQP="$AMQP_PORT" NODE_DIST="$ERL_DIST_PORT"
    return
  fi
  ((1 <= $1 && $1 <= RABBIT_NODES)) || die "no node rabbitmq-$1: the cluster has $RABBIT_NODES"
  RABBIT_DIR="$CLUSTER_DIR/node-$1" RABBIT_HOME="$CLUSTER_DIR" RABBIT_LABEL="rabbitmq-$1"
  NODE_AMQP=$((AMQP_PORT + $1 - 1)) NODE_DIST=$((ERL_DIST_PORT + $1 - 1))
  if ((RABBIT_NETNS)); then
    RABBIT_NODE="$RABBIT_BASE_NAME-$1@crm-n$1" NODE_HOST="$RABBIT_NET.$((10 + $1))"
    NODE_NS="$(net_name n "$1")"
  else
    RABBIT_NODE="$RABBIT_BASE_NAME-$1@localhost" NODE_HOST="$HOST" NODE_NS=""
  fi
}

# node_of ARG: the node number in "rabbitmq-N" (dies on anything else).
node_of() {
  [[ "${1:-}" =~ ^rabbitmq-([0-9]+)$ ]] || die "not a node name: '${1:-}' (rabbitmq-1, rabbitmq-2, ...)"
  is_cluster || die "$1: there is no cluster here (start one with LOCAL_RABBIT_NODES=3 deploy/local.sh up rabbitmq)"
  ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= RABBIT_NODES)) || die "$1: the cluster has $RABBIT_NODES nodes"
  printf '%s' "${BASH_REMATCH[1]}"
}

rabbit_nodes() {
  if is_cluster; then seq 1 "$RABBIT_NODES"; else echo 0; fi
}

# Runs in a subshell (callers use `( rabbit_env; ... )`) so nothing leaks.
rabbit_env() {
  export HOME="$RABBIT_HOME" # .erlang.cookie lives here, shared by server and CLI
  export RABBITMQ_NODENAME="$RABBIT_NODE"
  export RABBITMQ_NODE_IP_ADDRESS="$NODE_HOST"
  export RABBITMQ_NODE_PORT="$NODE_AMQP"
  export RABBITMQ_DIST_PORT="$NODE_DIST"
  export RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
  export RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
  export RABBITMQ_PID_FILE="$RABBIT_DIR/beam.pid"
  export ERL_EPMD_ADDRESS="$HOST"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {${NODE_HOST//./,}}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  if ((RABBIT_INDEX)); then
    # Several nodes share two cores: no busy-waiting schedulers.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS+=" +sbwt none +sbwtdcpu none +sbwtdio none"
    RABBITMQ_CTL_ERL_ARGS+=" -kernel net_ticktime $NET_TICKTIME"
  fi
  if [[ -n "$NODE_NS" ]]; then
    export ERL_EPMD_ADDRESS="$HOST,$NODE_HOST" # the namespace's own epmd, reached by the peers
    export ERL_INETRC="$CLUSTER_DIR/inetrc"    # the nodes' host names (crm-n1...)
  fi
}

# in_node_ns CMD...: run CMD in the selected node's network namespace, if it has one.
in_node_ns() {
  if [[ -n "$NODE_NS" ]]; then ip netns exec "$NODE_NS" "$@"; else "$@"; fi
}

rabbit_cli() { (rabbit_env && cd "$RABBIT_DIR" && in_node_ns "$RABBIT_BIN/$1" "${@:2}"); }

rabbit_write_config() {
  mkdir -p "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
  {
    cat <<'EOF'
# generated by deploy/local.sh (rewritten on every `up`)
# listener address/port come from RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT
EOF
    if [[ -n "$NODE_NS" ]]; then
      echo "loopback_users = none # the nodes sit on a private bridge: guest connects over it"
    else
      echo "loopback_users.guest = true"
    fi
    cat <<'EOF'
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
# Bodies over 512 KiB are refused at the broker (channel closed): twice the contracts'
# limit (256 KiB), so a service still dead-letters, with its reason, what lies between.
max_message_size = 524288
EOF
    if ((RABBIT_INDEX)); then
      echo "cluster_partition_handling = pause_minority"
    fi
  } >"$RABBIT_DIR/rabbitmq.conf"
  if ((RABBIT_INDEX)); then
    printf '%s\n' "%% generated by deploy/local.sh: a member of each quorum queue on every node" \
      "[{rabbit, [{quorum_cluster_size, $RABBIT_NODES}]}, {kernel, [{net_ticktime, $NET_TICKTIME}]}]." \
      >"$RABBIT_DIR/advanced.config"
  fi
  echo '[].' >"$RABBIT_DIR/enabled_plugins"
  : >"$RABBIT_DIR/rabbitmq-env.conf"
  if [[ ! -s "$RABBIT_HOME/.erlang.cookie" ]]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RABBIT_HOME/.erlang.cookie"
    chmod 400 "$RABBIT_HOME/.erlang.cookie"
  fi
}

rabbit_running() { pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server && port_open_at "$NODE_HOST" "$NODE_AMQP"; }

rabbit_ready() {
  port_open_at "$NODE_HOST" "$NODE_AMQP" &&
    rabbit_cli rabbitmq-diagnostics -q ping >/dev/null 2>&1 &&
    rabbit_cli rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1
}

rabbit_url() { printf 'amqp://guest:guest@%s:%s/' "$NODE_HOST" "$NODE_AMQP"; }

up_rabbitmq() {
  if is_cluster; then
    # shellcheck disable=SC2046 # one word per node number
    up_rabbit_cluster $(rabbit_nodes)
    return
  fi
  select_node 0
  if rabbit_running; then
    log "rabbitmq already running (pid $(<"$RABBIT_DIR/server.pid"))"
    create_broker_users # a node started before they existed gets them now
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
  set_alternate_exchange_policy
  create_broker_users
  log "rabbitmq ready: amqp://guest:guest@$HOST:$AMQP_PORT/"
}

# integration.events keeps what no queue is bound for (docs/contracts.md): a policy, idempotent
# (in a cluster it is the cluster's: set through the selected node).
set_alternate_exchange_policy() {
  rabbit_cli rabbitmqctl -q set_policy -p / --apply-to exchanges integration-events-alternate-exchange \
    '^integration\.events$' '{"alternate-exchange":"integration.unroutable"}' >/dev/null ||
    warn "could not set the alternate-exchange policy of integration.events"
}

# One broker user per service and one for crmctl (shared/messaging/permissions.py says what
# each may do). Passwords are made once into $BROKER_USERS (kept out of git, like all of
# .local/) and `env` prints each user's URL; the definitions are imported on every `up`
# (idempotent: users and permissions are updated in place).
BROKER_USERS="$LOCAL/rabbitmq-users.env"
BROKER_USER_NAMES=(crm identity notification mailsync crmctl)

create_broker_users() {
  local user defs
  if [[ ! -x "$PY" ]]; then
    warn "no $PY: broker users not created (run 'make venv', then 'deploy/local.sh up')"
    return 0
  fi
  if [[ ! -s "$BROKER_USERS" ]]; then
    (
      umask 077
      for user in "${BROKER_USER_NAMES[@]}"; do
        printf '%s_RABBITMQ_PASSWORD=%s\n' "${user^^}" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      done >"$BROKER_USERS"
    )
  fi
  defs="$(mktemp "${TMPDIR:-/tmp}/crm-broker-users.XXXXXX")" # password hashes: removed below
  if (set -a && source "$BROKER_USERS" && cd "$ROOT" && "$PY" -m shared.messaging.permissions definitions >"$defs") &&
    rabbit_cli rabbitmqctl -q import_definitions "$defs" >/dev/null; then
    log "broker users: ${BROKER_USER_NAMES[*]} (passwords in $BROKER_USERS)"
  else
    warn "could not create the broker users"
  fi
  rm -f "$defs"
}

# broker_user_url USER: that user's RABBITMQ_URL (every node, comma-separated).
broker_user_url() {
  local user="$1" password n urls=()
  password="$(sed -n "s/^${user^^}_RABBITMQ_PASSWORD=//p" "$BROKER_USERS")"
  for n in $(rabbit_nodes); do
    select_node "$n"
    urls+=("amqp://$user:$password@$NODE_HOST:$NODE_AMQP/")
  done
  (
    IFS=,
    echo "${urls[*]}"
  )
}

up_rabbitmq_node() {
  local n
  n="$(node_of "rabbitmq-$1")"
  up_rabbit_cluster "$n"
}

# up_rabbit_cluster N...: start those nodes together (a restarted cluster's nodes wait
# for each other), then join any that is not clustered yet.
up_rabbit_cluster() {
  local n live started=()
  [[ -x "$RABBIT_BIN/rabbitmq-server" ]] || die "rabbitmq-server not installed: run 'deploy/local.sh install'"
  if [[ -n "$RECORDED_NODES" && -n "${LOCAL_RABBIT_NODES:-}" && "$LOCAL_RABBIT_NODES" != "$RECORDED_NODES" ]]; then
    die "a $RECORDED_NODES-node cluster is set up in $LOCAL; stop it with 'deploy/local.sh down rabbitmq' first"
  fi
  if [[ -n "$RECORDED_NODES" && -n "${LOCAL_RABBIT_NETNS:-}" && "$LOCAL_RABBIT_NETNS" != "$RABBIT_NETNS" ]]; then
    die "the cluster in $LOCAL has LOCAL_RABBIT_NETNS=$RABBIT_NETNS; stop it with 'deploy/local.sh down rabbitmq' first"
  fi
  ! pid_alive "$LOCAL/rabbitmq/server.pid" rabbitmq-server ||
    die "the single RabbitMQ node of $LOCAL runs; stop it with 'LOCAL_RABBIT_NODES=1 deploy/local.sh down rabbitmq' first"
  mkdir -p "$CLUSTER_DIR"
  printf 'NODES=%s\nNETNS=%s\nNET=%s\n' "$RABBIT_NODES" "$RABBIT_NETNS" "$RABBIT_NET" >"$CLUSTER_ENV"
  if ((RABBIT_NETNS)); then net_up; fi
  for n in "$@"; do
    select_node "$n"
    if rabbit_running; then
      log "$RABBIT_LABEL already running (pid $(<"$RABBIT_DIR/server.pid"))"
      continue
    fi
    [[ ! -e "$RABBIT_DIR/cut-off" ]] || die "$RABBIT_LABEL is cut off: 'deploy/local.sh heal $RABBIT_LABEL' first"
    if ! pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server; then
      if [[ -z "$NODE_NS" ]] && port_open "$NODE_AMQP"; then claim_port "$RABBIT_LABEL" "$NODE_AMQP" rabbitmq; fi
      rabbit_write_config
      [[ -n "$NODE_NS" ]] || port_open 4369 || touch "$CLUSTER_DIR/epmd.started-by-us"
      log "starting $RABBIT_LABEL on $NODE_HOST:$NODE_AMQP (node $RABBIT_NODE)"
      local server=("$RABBIT_BIN/rabbitmq-server")
      [[ -z "$NODE_NS" ]] || server=(ip netns exec "$NODE_NS" "${server[@]}")
      (rabbit_env && cd "$RABBIT_DIR" &&
        spawn "$RABBIT_DIR/server.pid" "$RABBIT_DIR/log/startup.log" "${server[@]}")
    fi
    started+=("$n")
  done
  for n in "${started[@]}"; do
    select_node "$n"
    await "$RABBIT_LABEL" "$RABBIT_DIR/server.pid" rabbit_ready \
      "$RABBIT_DIR/log/startup.log" "$RABBIT_DIR/log/$RABBIT_NODE.log"
  done
  cluster_join
  for n in "$@"; do
    select_node "$n"
    log "$RABBIT_LABEL ready: $(rabbit_url)"
  done
  live="$(first_running_node)"
  if [[ -n "$live" ]]; then
    select_node "$live"
    set_alternate_exchange_policy
    create_broker_users
  fi
}

# first_running_node: the number of the first node that runs and is not cut off (or nothing).
first_running_node() {
  local n
  for n in $(rabbit_nodes); do
    select_node "$n"
    if [[ ! -e "$RABBIT_DIR/cut-off" ]] && rabbit_running; then
      printf '%s' "$n"
      return
    fi
  done
}

# cluster_join: every running node that is not in the cluster of the first running
# node joins it (a fresh node; one that was in the cluster rejoins by itself).
cluster_join() {
  local n seed seed_node out
  seed="$(first_running_node)"
  [[ -n "$seed" ]] || return 0
  select_node "$seed"
  seed_node="$RABBIT_NODE"
  for n in $(rabbit_nodes); do
    ((n != seed)) || continue
    select_node "$n"
    [[ ! -e "$RABBIT_DIR/cut-off" ]] && rabbit_running || continue
    if rabbit_cli rabbitmqctl -q cluster_status --formatter json 2>/dev/null | grep -qF "\"$seed_node\""; then
      continue
    fi
    log "$RABBIT_LABEL joins the cluster of $seed_node"
    # (start_app reports the peers' tables it is still catching up with: shown only on failure)
    if ! out="$({ rabbit_cli rabbitmqctl -q stop_app &&
      rabbit_cli rabbitmqctl -q join_cluster "$seed_node" &&
      rabbit_cli rabbitmqctl -q start_app; } 2>&1)"; then
      printf '%s\n' "$out" >&2
      die "$RABBIT_LABEL could not join the cluster of $seed_node (log: $RABBIT_DIR/log/$RABBIT_NODE.log)"
    fi
    await "$RABBIT_LABEL" "$RABBIT_DIR/server.pid" rabbit_ready "$RABBIT_DIR/log/$RABBIT_NODE.log"
  done
}

down_rabbitmq() {
  local n
  if ! is_cluster; then
    select_node 0
    down_rabbit_node
    stop_epmd "$RABBIT_DIR/epmd.started-by-us"
    return
  fi
  for n in $(rabbit_nodes | sort -rn); do
    select_node "$n"
    down_rabbit_node
  done
  if ((RABBIT_NETNS)); then net_down; else stop_epmd "$CLUSTER_DIR/epmd.started-by-us"; fi
  rm -f "$CLUSTER_ENV" # the data stays; the next `up` is a single node unless told otherwise
}

down_rabbitmq_node() {
  local n
  n="$(node_of "rabbitmq-$1")"
  select_node "$n"
  down_rabbit_node
}

down_rabbit_node() {
  local limit=()
  # A cluster node can hang in its start after a partition: give up waiting on it.
  ((RABBIT_INDEX == 0)) || limit=(--timeout 60)
  if pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server; then
    log "stopping $RABBIT_LABEL"
    # `shutdown` stops the node and waits for its OS process to exit.
    rabbit_cli rabbitmqctl -q "${limit[@]}" shutdown >/dev/null 2>&1 || warn "rabbitmqctl shutdown failed; sending SIGTERM"
  fi
  stop_pid "$RABBIT_LABEL" "$RABBIT_DIR/server.pid" rabbitmq-server
  stop_pid "$RABBIT_LABEL (beam)" "$RABBIT_DIR/beam.pid" beam
}

# stop_epmd MARKER: epmd outlives the nodes; stop it only if we started it and nobody uses it.
stop_epmd() {
  if [[ -e "$1" ]] && command -v epmd >/dev/null; then
    local names
    names="$(ERL_EPMD_ADDRESS="$HOST" epmd -names 2>/dev/null)" || names=""
    if [[ "$names" != *$'\n'"name "* ]]; then
      ERL_EPMD_ADDRESS="$HOST" epmd -kill >/dev/null 2>&1 || true
    fi
    rm -f "$1"
  fi
}

# ---------------------------------------------------------------- rabbitmq: namespaces

# net_name KIND [N]: bridge "crmbr<X>", namespace "crm<X>-n<N>", its veth "crm<X>-v<N>"
# (X: the subnet's third number, so two state folders on different subnets never clash).
net_name() {
  local x="${RABBIT_NET##*.}"
  case "$1" in
    bridge) printf 'crmbr%s' "$x" ;;
    n) printf 'crm%s-n%s' "$x" "$2" ;;
    v) printf 'crm%s-v%s' "$x" "$2" ;;
  esac
}

net_up() {
  local n ns veth bridge
  ((EUID == 0)) || die "LOCAL_RABBIT_NETNS=1: network namespaces need root"
  command -v ip >/dev/null || die "LOCAL_RABBIT_NETNS=1 needs iproute2's 'ip'"
  bridge="$(net_name bridge)"
  if [[ -e "/sys/class/net/$bridge" ]]; then
    [[ "$(cat "/sys/class/net/$bridge/ifalias" 2>/dev/null)" == "$LOCAL" ]] ||
      die "bridge $bridge ($RABBIT_NET.0/24) belongs to another state folder; set LOCAL_RABBIT_NET to another 10.x.y"
  else
    ! ip -4 -o addr show | grep -qF " $RABBIT_NET." ||
      die "$RABBIT_NET.0/24 is already in use on this machine; set LOCAL_RABBIT_NET to another 10.x.y"
    log "network: bridge $bridge, $RABBIT_NET.0/24"
    ip link add "$bridge" type bridge
    ip link set "$bridge" alias "$LOCAL"
    ip addr add "$RABBIT_NET.1/24" dev "$bridge"
    ip link set "$bridge" up
  fi
  : >"$CLUSTER_DIR/inetrc.new"
  for n in $(rabbit_nodes); do
    printf '{host, {%s,%s}, ["crm-n%s"]}.\n' "${RABBIT_NET//./,}" "$((10 + n))" "$n" >>"$CLUSTER_DIR/inetrc.new"
  done
  echo '{lookup, [file, native]}.' >>"$CLUSTER_DIR/inetrc.new"
  mv "$CLUSTER_DIR/inetrc.new" "$CLUSTER_DIR/inetrc"
  for n in $(rabbit_nodes); do
    ns="$(net_name n "$n")" veth="$(net_name v "$n")"
    if [[ ! -e "/run/netns/$ns" ]]; then
      ip netns add "$ns"
      ip -n "$ns" link set lo up
    fi
    if [[ ! -e "/sys/class/net/$veth" ]]; then
      ip link add "$veth" type veth peer name eth0 netns "$ns"
      ip link set "$veth" master "$bridge"
      ip -n "$ns" addr add "$RABBIT_NET.$((10 + n))/24" dev eth0
      ip -n "$ns" link set eth0 up
    fi
    [[ -e "$CLUSTER_DIR/node-$n/cut-off" ]] || ip link set "$veth" up
  done
}

net_down() {
  local n ns pid bridge
  for n in $(rabbit_nodes); do
    ns="$(net_name n "$n")"
    rm -f "$CLUSTER_DIR/node-$n/cut-off"
    [[ -e "/run/netns/$ns" ]] || continue
    # What is left in our namespace (its epmd) was started by us, for this node.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
    ip link del "$(net_name v "$n")" 2>/dev/null || true # else it goes with the namespace, later
  done
  bridge="$(net_name bridge)"
  if [[ -e "/sys/class/net/$bridge" && "$(cat "/sys/class/net/$bridge/ifalias" 2>/dev/null)" == "$LOCAL" ]]; then
    ip link del "$bridge"
  fi
}

# cmd_partition rabbitmq-N / cmd_heal rabbitmq-N: take its link off the bridge, or back.
cmd_partition() {
  local n
  n="$(node_of "${1:-}")"
  ((RABBIT_NETNS)) || die "partition: the cluster runs on loopback; start it with LOCAL_RABBIT_NETNS=1 (root)"
  select_node "$n"
  touch "$RABBIT_DIR/cut-off"
  ip link set "$(net_name v "$n")" down
  log "$RABBIT_LABEL cut off ($NODE_HOST unreachable from its peers and its clients)"
}

cmd_heal() {
  local n
  n="$(node_of "${1:-}")"
  ((RABBIT_NETNS)) || die "heal: the cluster runs on loopback; nothing is cut off"
  select_node "$n"
  ip link set "$(net_name v "$n")" up
  rm -f "$RABBIT_DIR/cut-off"
  log "$RABBIT_LABEL reconnected; waiting for it to rejoin"
  # A paused node (pause_minority) starts again once it sees the majority. RabbitMQ 3.10
  # on Erlang 25 (Debian's) can hang in that start, in global:sync (seen in about half of
  # our tries after a cut of 30 s): a node not back within a minute is restarted.
  local deadline=$((SECONDS + 60))
  until rabbit_ready; do
    if ((SECONDS >= deadline)); then
      warn "$RABBIT_LABEL did not rejoin within 60 s after the cut; restarting it (SIGKILL, start)"
      (kill_pid "$RABBIT_LABEL" "$RABBIT_DIR/beam.pid" beam "$NODE_HOST" "$NODE_AMQP") || true
      up_rabbit_cluster "$n"
      return
    fi
    sleep 1
  done
  log "$RABBIT_LABEL is back in the cluster"
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
    # Serial GC, a fixed heap, two malloc arenas (not one per thread) and the native heap
    # trimmed every 5 s keep the JVM within about 512 MB on a small machine (malloc kept
    # what the JIT compilers had freed: 72 MB of 519 at 50,000 documents, returned by a
    # trim); a JVM out of memory exits (H2 would close its store and leave the server
    # answering errors). A 64 MB young generation: the default third of the heap is
    # touched in full between collections, and at 10,000 accounts about 105 MB survive a
    # full collection. Netty encodes replies into heap buffers (noPreferDirect); it reads
    # requests into direct ones, unpooled (Main sets the allocator), so the 64 MB of direct
    # memory hold only the requests and replies in flight.
    spawn "$MONGO_DIR/mongodb.pid" "$MONGO_DIR/mongodb.log" \
      env MALLOC_ARENA_MAX=2 java "-Xmx$MONGO_HEAP" -Xmn64m "-Dcrm.cacheMb=$MONGO_CACHE_MB" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -XX:TrimNativeHeapInterval=5000 -Xss512k -XX:MaxDirectMemorySize=64m \
      -XX:ReservedCodeCacheSize=64m -XX:MaxMetaspaceSize=96m -Dio.netty.noPreferDirect=true \
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
      rabbitmq-[0-9]*) node_of "$c" >/dev/null || exit 1 ;;
      *) die "restart: unknown component '$c' (one of: ${COMPONENTS[*]}, or rabbitmq-N of a cluster)" ;;
    esac
    bash "$SELF" __down "$c" && bash "$SELF" __up "$c" || die "restart of $c failed"
  done
}

# cmd_kill COMPONENT: SIGKILL its process (a crash, for the fault tests); `rabbitmq`
# in a cluster kills every node, `rabbitmq-N` one of them.
cmd_kill() {
  local n killed=0
  case "${1:-}" in
    mongodb) kill_pid mongodb "$MONGO_DIR/mongodb.pid" crm.embedded.Main "$HOST" "$MONGO_PORT" ;;
    rabbitmq)
      if ! is_cluster; then
        kill_pid rabbitmq "$RABBIT_DIR/beam.pid" beam "$NODE_HOST" "$NODE_AMQP"
        return
      fi
      for n in $(rabbit_nodes); do
        select_node "$n"
        pid_alive "$RABBIT_DIR/beam.pid" beam || continue
        (kill_pid "$RABBIT_LABEL" "$RABBIT_DIR/beam.pid" beam "$NODE_HOST" "$NODE_AMQP") && killed=1
      done
      ((killed)) || die "kill: no node of the cluster is running"
      ;;
    rabbitmq-[0-9]*)
      n="$(node_of "$1")"
      select_node "$n"
      kill_pid "$RABBIT_LABEL" "$RABBIT_DIR/beam.pid" beam "$NODE_HOST" "$NODE_AMQP"
      ;;
    smtp) kill_pid smtp "$SMTP_DIR/smtp.pid" smtp_catcher "$HOST" "$SMTP_PORT" ;;
    *) die "kill: one of mongodb, rabbitmq, rabbitmq-N (a node of a cluster), smtp" ;;
  esac
}

# kill_pid NAME PIDFILE PATTERN HOST PORT: SIGKILL, then wait until the process is gone
# and its port is free. A multi-threaded process (the JVM, the BEAM) shows as a
# zombie while its other threads still close its sockets, so `up` right after a
# kill would otherwise find the port held by nobody it knows.
kill_pid() {
  local name="$1" pidfile="$2" pattern="$3" host="$4" port="$5" i
  pid_alive "$pidfile" "$pattern" || die "kill: $name is not running"
  log "killing $name (pid $(<"$pidfile"), SIGKILL)"
  kill -KILL "$(<"$pidfile")"
  while pid_alive "$pidfile" "$pattern"; do sleep 0.1; done
  for ((i = 0; i < 300; i++)); do
    port_open_at "$host" "$port" || return 0
    sleep 0.1
  done
  die "kill: $name's port $port is still open 30 s after SIGKILL"
}

cmd_status() {
  local rc=0 n
  for n in $(rabbit_nodes); do
    select_node "$n"
    if [[ -e "$RABBIT_DIR/cut-off" ]] && pid_alive "$RABBIT_DIR/server.pid" rabbitmq-server; then
      printf '%-9s cut off  pid %-8s amqp://%s:%s/\n' "$RABBIT_LABEL" "$(<"$RABBIT_DIR/server.pid")" "$NODE_HOST" "$NODE_AMQP"
      rc=3
    else
      status_line "$RABBIT_LABEL" rabbit_running "$RABBIT_DIR/server.pid" "amqp://$NODE_HOST:$NODE_AMQP/" || rc=3
    fi
  done
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
  local name value n urls=()
  for n in $(rabbit_nodes); do
    select_node "$n"
    urls+=("$(rabbit_url)")
  done
  while IFS='=' read -r name value; do
    printf 'export %s=%q\n' "$name" "$value"
  done <<EOF
RABBITMQ_URL=$(
    IFS=,
    echo "${urls[*]}"
  )
MONGODB_URL=mongodb://$HOST:$MONGO_PORT/
SMTP_HOST=$HOST
SMTP_PORT=$SMTP_PORT
SMTP_CATCHER_DIR=$SMTP_DIR/inbox
IMAP_HOST=$HOST
IMAP_PORT=$IMAP_PORT
IMAP_TEST_USER=$IMAP_USER
IMAP_TEST_PASSWORD=$IMAP_PASSWORD
EOF
  # Each service's own broker user (deploy/services.sh gives each its URL) and crmctl's.
  [[ -s "$BROKER_USERS" ]] || return 0
  local user
  for user in "${BROKER_USER_NAMES[@]}"; do
    printf 'export %s_RABBITMQ_URL=%q\n' "${user^^}" "$(broker_user_url "$user")"
  done
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"
  exit 2
}

# cli_node: the node a CLI passthrough talks to in a cluster: LOCAL_RABBIT_CLI_NODE, else
# the first node that runs and is not cut off.
cli_node() {
  local n
  if [[ -n "${LOCAL_RABBIT_CLI_NODE:-}" ]]; then
    node_of "rabbitmq-$LOCAL_RABBIT_CLI_NODE"
    return
  fi
  n="$(first_running_node)"
  printf '%s' "${n:-1}"
}

main() {
  local cmd="${1:-}" n
  rabbit_mode
  select_node 0
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_up "${@:2}" ;;
    down) cmd_down "${@:2}" ;;
    status) cmd_status ;;
    restart) cmd_restart "${@:2}" ;;
    kill) cmd_kill "${@:2}" ;;
    env) cmd_env ;;
    partition) cmd_partition "${@:2}" ;;
    heal) cmd_heal "${@:2}" ;;
    rabbitmqctl | rabbitmq-diagnostics | rabbitmq-queues | rabbitmq-plugins)
      if is_cluster; then
        n="$(cli_node)"
        select_node "$n"
      fi
      rabbit_cli "$cmd" "${@:2}"
      ;;
    __up | __down)
      case "${2:-}" in
        rabbitmq | mongodb | smtp | imap) "${cmd#__}_$2" ;;
        rabbitmq-[0-9]*) "${cmd#__}_rabbitmq_node" "${2#rabbitmq-}" ;;
        *) usage ;;
      esac
      ;;
    *) usage ;;
  esac
}

main "$@"
