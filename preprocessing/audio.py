"""MIDI → WAV through FluidSynth and a General MIDI SoundFont (Debian: fluid-soundfont-gm)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/default.sf2")


class AudioUnavailable(RuntimeError):
    """FluidSynth or a SoundFont is missing."""


def find_soundfont() -> str:
    for path in [os.environ.get("COMPOSER_SOUNDFONT", ""), *SOUNDFONTS]:
        if path and os.path.exists(path):
            return path
    raise AudioUnavailable("no General MIDI SoundFont found: install fluid-soundfont-gm "
                           "(apt-get install fluid-soundfont-gm) or set COMPOSER_SOUNDFONT")


def render_wav(midi: str | Path, wav: str | Path, sample_rate: int = 22050,
               soundfont: str | None = None) -> Path:
    """Renders a MIDI file to a 16-bit WAV file and returns its path.

    Raises:
        AudioUnavailable: fluidsynth or a SoundFont is not installed.
    """
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise AudioUnavailable("fluidsynth is not installed: apt-get install fluidsynth "
                               "fluid-soundfont-gm (scripts/setup.sh does it)")
    soundfont = soundfont or find_soundfont()
    wav = Path(wav)
    wav.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([binary, "-ni", "-q", "-g", "0.8", "-r", str(sample_rate), "-F", str(wav),
                    soundfont, str(midi)], check=True, capture_output=True, timeout=300)
    return wav
