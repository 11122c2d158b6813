#!/usr/bin/env bash
# A real Home Assistant for development and CI, on 127.0.0.1 only.
#
#   scripts/dev-home-assistant.sh start    install (once), start, onboard (once), print
#                                          HA_URL=... and HA_TOKEN=... lines
#   scripts/dev-home-assistant.sh stop     stop the one this script started (pid file)
#   scripts/dev-home-assistant.sh status   running or not
#
# Home Assistant Core 2024.3.3 (the newest that runs on Python 3.11) lives in its OWN
# virtual environment, outside the repository: its exact pins clash with ATLAS's. State
# (venv, config, token, log, pid) is under $ATLAS_HA_HOME (default
# ~/.cache/atlas/home-assistant); the port is $ATLAS_HA_PORT (default 8123). The config
# holds the `demo` integration; scripts/dev_home_assistant_bootstrap.py creates the
# owner, a long-lived token (kept in token, mode 600) and a few areas.
set -euo pipefail

HA_VERSION=2024.3.3
HERE="$(cd "$(dirname "$0")" && pwd)"
HA_HOME="${ATLAS_HA_HOME:-$HOME/.cache/atlas/home-assistant}"
PORT="${ATLAS_HA_PORT:-8123}"
URL="http://127.0.0.1:$PORT"
VENV="$HA_HOME/venv"
CONF="$HA_HOME/config"
PIDFILE="$HA_HOME/hass.pid"
TOKEN_FILE="$HA_HOME/token"
LOG="$HA_HOME/home-assistant.log"
READY_TIMEOUT_S="${ATLAS_HA_READY_TIMEOUT_S:-240}"
PYTHON="${ATLAS_HA_PYTHON:-python3.11}"
# What the demo and its dependencies (conversation, frontend, recorder, ...) install at
# their first start; installed here so that a start needs no network (--skip-pip).
START_REQUIREMENTS=(
  "josepy<2" fnv-hash-fast==0.5.0 ha-ffmpeg==3.1.0 hassil==1.6.1
  home-assistant-frontend==20240307.0 home-assistant-intents==2024.3.12 mutagen==1.47.0
  numpy==1.26.0 pillow==10.2.0 psutil-home-assistant==0.0.1 pyotp==2.8.0 PyQRCode==1.2.1
  PyTurboJPEG==1.7.1 securetar==2024.2.1 SQLAlchemy==2.0.27 janus==1.0.0
)

say() { echo "dev-home-assistant: $*" >&2; }
die() { say "$*"; exit 1; }

install() {
  local marker="$HA_HOME/.installed-$HA_VERSION"
  [[ -f "$marker" ]] && return 0
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (Home Assistant $HA_VERSION needs Python 3.11)"
  say "installing Home Assistant $HA_VERSION into $VENV (a few minutes, once)"
  mkdir -p "$HA_HOME/wheels"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" download -q --no-deps "homeassistant==$HA_VERSION" -d "$HA_HOME/wheels"
  local wheel="$HA_HOME/wheels/homeassistant-$HA_VERSION-py3-none-any.whl"
  # Home Assistant's own tested pins ship inside its wheel.
  "$VENV/bin/python" - "$wheel" "$HA_HOME/constraints.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("homeassistant/package_constraints.txt")
open(sys.argv[2], "wb").write(data)
PY
  "$VENV/bin/pip" install -q -c "$HA_HOME/constraints.txt" "$wheel" "${START_REQUIREMENTS[@]}"
  touch "$marker"
}

write_config() {
  mkdir -p "$CONF"
  cat >"$CONF/configuration.yaml" <<YAML
# Written by scripts/dev-home-assistant.sh: a development home on 127.0.0.1 only.
homeassistant:
  name: ATLAS dev home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
http:
  server_host: 127.0.0.1
  server_port: $PORT
api:
conversation:
demo:
YAML
}

running() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

http_code() {  # URL [token]
  local auth=()
  [[ $# -gt 1 ]] && auth=(-H "Authorization: Bearer $2")
  curl -s -o /dev/null -m 5 -w '%{http_code}' "${auth[@]}" "$1" || true
}

wait_for() {  # what url code [token]
  local what="$1" url="$2" want="$3" deadline=$((SECONDS + READY_TIMEOUT_S))
  shift 3
  until [[ "$(http_code "$url" "$@")" == "$want" ]]; do
    running || die "Home Assistant exited while starting; see $LOG"
    if grep -qE "recovery mode|Failed to create HTTP server" "$LOG" 2>/dev/null; then
      die "Home Assistant did not start cleanly (recovery mode or port in use); see $LOG"
    fi
    ((SECONDS < deadline)) || die "Home Assistant not $what after ${READY_TIMEOUT_S}s; see $LOG"
    sleep 1
  done
}

start() {
  install
  write_config
  if ! running; then
    [[ "$(http_code "$URL/api/")" == "000" ]] || die "port $PORT is taken by another process"
    say "starting Home Assistant on $URL (log: $LOG)"
    setsid nohup "$VENV/bin/hass" -c "$CONF" --skip-pip --log-file "$LOG" \
      >"$HA_HOME/hass.out" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  wait_for "answering" "$URL/api/onboarding" 200
  if [[ ! -s "$TOKEN_FILE" ]]; then
    local token
    token="$("$VENV/bin/python" "$HERE/dev_home_assistant_bootstrap.py" "$URL")" ||
      die "onboarding failed (an old state without its token? remove $CONF/.storage)"
    (umask 077 && printf '%s\n' "$token" >"$TOKEN_FILE")
  fi
  chmod 600 "$TOKEN_FILE"
  local token
  token="$(cat "$TOKEN_FILE")"
  wait_for "serving the demo" "$URL/api/states/light.kitchen_lights" 200 "$token"
  echo "HA_URL=$URL"
  echo "HA_TOKEN=$token"
}

stop() {
  if ! running; then
    say "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PIDFILE"
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$PIDFILE")) at $URL"; else echo "stopped"; fi ;;
  *) die "usage: $0 start|stop|status" ;;
esac
