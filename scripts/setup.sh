#!/usr/bin/env bash
# Installs everything ATLAS needs on a fresh Debian machine with Python 3.11:
#   Debian packages (PortAudio for sound devices, sox and espeak-ng for fixtures),
#   a virtual environment in .venv, pinned Python dependencies (torch 2.13.0 CPU first),
#   ATLAS itself, and a sha256 check of every bundled model.
# Safe to run again: finished steps are skipped or are no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
DEBIAN_PACKAGES=(libportaudio2 sox espeak-ng)

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

step "Debian packages: ${DEBIAN_PACKAGES[*]}"
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
    die "please install these Debian packages as root: ${missing[*]}"
  fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}"
else
  echo "all present"
fi

step "Python virtual environment ($VENV)"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: ATLAS needs Python 3.11 (apt-get install python3.11 python3.11-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "$PYTHON is not Python 3.11"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"

step "torch 2.13.0 (CPU build; a plain 'torch' would pull several GB of CUDA)"
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__ != "2.13.0+cpu")' 2>/dev/null; then
  # A local wheel or mirror may carry the +cpu build; otherwise PyTorch's CPU index does.
  "${PIP[@]}" install -q "torch==2.13.0+cpu" 2>/dev/null \
    || "${PIP[@]}" install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi

step "pinned Python dependencies (requirements.lock; llama-cpp-python compiles once, ~6 min)"
"${PIP[@]}" install -q -r requirements.lock

step "ATLAS itself (editable)"
"${PIP[@]}" install -q --no-deps -e .

step "bundled models (sha256 check)"
"$VENV/bin/atlas" models verify

printf '\nATLAS is installed. Try:  .venv/bin/atlas transcribe tests/fixtures/audio/local_what_time.wav\n'
