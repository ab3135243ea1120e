#!/usr/bin/env bash
# One-time setup, safe to rerun: system packages (audio, a headless browser), then .venv with requirements.txt
# and the project (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

# fluidsynth + a General MIDI SoundFont render WAV; chromium + its driver run the studio page's
# browser test
PACKAGES=()
command -v fluidsynth >/dev/null && [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] \
  || PACKAGES+=(fluidsynth fluid-soundfont-gm)
command -v chromium >/dev/null && command -v chromedriver >/dev/null \
  || PACKAGES+=(chromium chromium-driver)
if [ ${#PACKAGES[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if command -v apt-get >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${PACKAGES[@]}" >/dev/null \
      || echo "setup: could not install ${PACKAGES[*]}; WAV output or the browser test will be unavailable" >&2
  else
    echo "setup: no apt-get; install ${PACKAGES[*]} for WAV output and the browser test" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# the project itself, editable: `import serving.composer` works from any folder with this venv
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
