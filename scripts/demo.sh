#!/usr/bin/env bash
# Runs the kiosk demo on its embedded default: the reference backend, pcscd with virtual cards and the printer
# twin. With a display: the kiosk window with a dev panel. Without one: the scripted journeys under Xvfb, in both
# orientations, writing screenshots and receipt PNGs to the folder it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kiosk demo "$@"
