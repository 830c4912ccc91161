#!/usr/bin/env bash
# pamlive: from a fresh Debian machine to the demo or to a full test run, in one command.
#   bash scripts/setup.sh demo   # system packages, venv, pamlive; then `pamlive demo`
#   bash scripts/setup.sh test   # the same plus test/convert extras; then the whole suite
# Idempotent: re-running skips what is already installed.
set -euo pipefail
MODE="${1:-demo}"
shift || true
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(python3 python3-venv python3-pip libportaudio2 libsndfile1)
if [ "$MODE" = test ]; then
  # the live-path tests run through a real JACK server (dummy backend); the dashboard
  # tests draw on a real terminal (tmux)
  APT_PACKAGES+=(jackd2 systemd tmux)
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VENV_PY="$ROOT/.venv/bin/python"
"$VENV_PY" -m pip install -q --upgrade pip >/dev/null
EXTRAS="."
if [ "$MODE" = test ]; then EXTRAS=".[test,convert,cluster,bats,openvino]"; fi
"$VENV_PY" -m pip install -q -e "$EXTRAS"
if [ "$MODE" = test ]; then
  # batdetect2's checkpoint (CC-BY-NC-4.0, never in this repository) for the bat import
  # tests; --no-deps: its own dependencies (librosa, torchaudio ...) are not needed
  "$VENV_PY" -m pip install -q --no-deps batdetect2==1.3.1
fi

case "$MODE" in
  demo)
    exec "$ROOT/.venv/bin/pamlive" demo "$@"
    ;;
  test)
    "$ROOT/.venv/bin/ruff" check pamlive tests benchmarks training examples
    "$ROOT/.venv/bin/mypy" pamlive
    exec "$VENV_PY" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash scripts/setup.sh demo|test [args...]" >&2
    exit 2
    ;;
esac
