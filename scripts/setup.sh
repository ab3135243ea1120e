#!/usr/bin/env bash
# One-time setup, safe to rerun: system packages for audio, then .venv with requirements.txt
# and the project (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v fluidsynth >/dev/null || [ ! -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if command -v apt-get >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null \
      || echo "setup: could not install fluidsynth; WAV rendering will be unavailable" >&2
  else
    echo "setup: no apt-get; install fluidsynth and a General MIDI SoundFont for WAV output" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# the project itself, editable: `import serving.composer` works from any folder with this venv
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
