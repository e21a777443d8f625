#!/usr/bin/env bash
# Installs everything the kiosk, its demo and its tests need on Debian 12 (run as root): apt packages,
# then a virtualenv in .venv with the project and its test extras. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config   # the interpreter, venv, and building pyscard
  swig libpcsclite-dev                              # pyscard builds from source (no Linux wheel)
  pcscd vsmartcard-vpcd                             # PC/SC daemon + virtual reader the card twin plugs into
  xvfb xauth libgl1 libegl1 libgl1-mesa-dri libmtdev1  # a GL window with no display (Mesa llvmpipe)
  fontconfig fonts-noto-cjk                         # Chinese text, found through fc-match
  espeak-ng                                         # offline Mandarin voice prompts
  chromium chromium-driver                          # the township worklist tested in a real headless browser
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "setup: Python 3.11 is required (found $("$PY" --version))" >&2; exit 1; }

stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
