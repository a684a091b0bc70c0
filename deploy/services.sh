#!/usr/bin/env bash
# Start, stop or inspect the four services as local processes (the no-Docker path).
# Usage: deploy/services.sh start|stop|status
# Each service serves /health on loopback: crm 8001, identity 8002 (also the client
# portal), notification 8003 (also the unsubscribe page), mailsync 8004; and /metrics and
# /docs/asyncapi on its internal port: 9001, 9002, 9003, 9004. Each connects to RabbitMQ
# as its own user (deploy/local.sh env). Logs: .local/log/<service>.log
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.local/run"
LOG="$ROOT/.local/log"
declare -A PORTS=([crm]=8001 [identity]=8002 [notification]=8003 [mailsync]=8004)
declare -A INTERNAL_PORTS=([crm]=9001 [identity]=9002 [notification]=9003 [mailsync]=9004)
ORDER=(crm identity notification mailsync)

running() {
  local pidfile="$RUN/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

healthy() {
  "$ROOT/.venv/bin/python" - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# Keys the services need, made once per checkout and kept out of git (.local/).
SECRETS="$ROOT/.local/secrets.env"
ensure_secrets() {
  [[ -s "$SECRETS" ]] && return
  mkdir -p "$(dirname "$SECRETS")"
  (
    umask 077
    cd "$ROOT" && "$ROOT/.venv/bin/python" -m services.keys >"$SECRETS"
  )
}

start_one() {
  local name="$1" port="${PORTS[$1]}"
  if running "$name"; then echo "==> $name already running"; return; fi
  echo "==> starting $name on 127.0.0.1:$port"
  (
    eval "$("$ROOT/deploy/local.sh" env)"
    # Its own broker user (deploy/local.sh creates one per service on `up`).
    own_url="${name^^}_RABBITMQ_URL"
    [[ -n "${!own_url:-}" ]] || { echo "no $own_url: run 'deploy/local.sh up rabbitmq'" >&2; exit 1; }
    export RABBITMQ_URL="${!own_url}"
    set -a
    # shellcheck source=/dev/null
    source "$SECRETS"
    set +a
    export PORTAL_BASE_URL="${PORTAL_BASE_URL:-http://127.0.0.1:8002}"
    export NOTIFICATION_PUBLIC_URL="${NOTIFICATION_PUBLIC_URL:-http://127.0.0.1:8003}"
    # uvicorn takes X-Forwarded-For only from these proxies: none unless you set some.
    export FORWARDED_ALLOW_IPS="${FORWARDED_ALLOW_IPS:-}"
    export INTERNAL_HTTP_PORT="${INTERNAL_PORTS[$name]}"
    # mailsync may connect to the local Dovecot (loopback, plain IMAP): see docs/email-sync.md.
    export IMAP_ALLOWED_SERVERS="${IMAP_ALLOWED_SERVERS:-$IMAP_HOST:$IMAP_PORT/plain}"
    cd "$ROOT"
    if [[ "$name" == identity && -z "${BANNER_LINK_PUBLIC_KEY:-}" ]]; then
      # identity checks activation banner links with notification's public key (a
      # secrets.env written before it listed the key).
      BANNER_LINK_PUBLIC_KEY="$("$ROOT/.venv/bin/python" -m services.notification.links)"
      export BANNER_LINK_PUBLIC_KEY
    fi
    exec "$ROOT/.venv/bin/faststream" run "services.$name.main:app" \
      --host 127.0.0.1 --port "$port" --access-log false
  ) >>"$LOG/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

wait_healthy() {
  local name="$1" port="${PORTS[$1]}"
  for _ in $(seq 1 60); do
    if healthy "$port"; then echo "    $name healthy"; return; fi
    if ! running "$name"; then break; fi
    sleep 0.5
  done
  echo "!! $name did not become healthy; last log lines:" >&2
  tail -n 20 "$LOG/$name.log" >&2
  exit 1
}

stop_one() {
  local name="$1" pidfile="$RUN/$1.pid"
  if running "$name"; then
    echo "==> stopping $name"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 40); do running "$name" || break; sleep 0.25; done
    running "$name" && kill -9 "$(cat "$pidfile")"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start)
    mkdir -p "$RUN" "$LOG"
    ensure_secrets
    for s in "${ORDER[@]}"; do start_one "$s"; done
    for s in "${ORDER[@]}"; do wait_healthy "$s"; done
    ;;
  stop)
    for s in "${ORDER[@]}"; do stop_one "$s"; done
    ;;
  status)
    for s in "${ORDER[@]}"; do
      if running "$s"; then printf '%-13s running  pid %s  http://127.0.0.1:%s/health  http://127.0.0.1:%s/metrics\n' "$s" "$(cat "$RUN/$s.pid")" "${PORTS[$s]}" "${INTERNAL_PORTS[$s]}"
      else printf '%-13s stopped\n' "$s"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
