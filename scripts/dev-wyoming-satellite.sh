#!/usr/bin/env bash
# The real wyoming-satellite program, for tests and development, in its OWN venv.
#
#   scripts/dev-wyoming-satellite.sh install   create/reuse the venv (once); print its python
#   scripts/dev-wyoming-satellite.sh python    print the venv's python (install first)
#
# wyoming-satellite 1.0.0 pins its own `wyoming` (1.4.1), so it lives outside ATLAS's venv,
# under $ATLAS_SATELLITE_HOME (default ~/.cache/atlas/wyoming-satellite). Its console
# script is broken in 1.0.0: start it as `$PYTHON -m wyoming_satellite --uri tcp://... ...`.
set -euo pipefail

SATELLITE_VERSION=1.0.0
SAT_HOME="${ATLAS_SATELLITE_HOME:-$HOME/.cache/atlas/wyoming-satellite}"
VENV="$SAT_HOME/venv"
PYTHON="${ATLAS_SATELLITE_PYTHON:-python3.11}"

say() { echo "dev-wyoming-satellite: $*" >&2; }
die() { say "$*"; exit 1; }

install() {
  local marker="$SAT_HOME/.installed-$SATELLITE_VERSION"
  if [[ ! -f "$marker" ]]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
    say "installing wyoming-satellite $SATELLITE_VERSION into $VENV (once)"
    mkdir -p "$SAT_HOME"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "wyoming-satellite==$SATELLITE_VERSION"
    "$VENV/bin/python" -c "import wyoming_satellite" || die "wyoming_satellite does not import"
    touch "$marker"
  fi
  echo "$VENV/bin/python"
}

case "${1:-}" in
  install) install ;;
  python) [[ -f "$SAT_HOME/.installed-$SATELLITE_VERSION" ]] || die "not installed (run: $0 install)"
          echo "$VENV/bin/python" ;;
  *) die "usage: $0 install|python" ;;
esac
