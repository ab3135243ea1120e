"""Piano-roll pictures (PNG) of pieces, with the primer marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocessing import pianoroll
from preprocessing.piece import Piece


def save_roll_png(piece: Piece, path: str | Path, steps_per_quarter: int = 4,
                  primer_end: float = 0.0, title: str = "") -> Path:
    """Draws the piece's piano roll (keys up, time right) with a line where the primer ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = pianoroll.piece_to_roll(piece, steps_per_quarter)
    fig, ax = plt.subplots(figsize=(min(24.0, max(6.0, len(roll) / 32)), 4), dpi=100)
    ax.imshow(roll.T if len(roll) else np.zeros((pianoroll.KEYS, 1)), aspect="auto",
              origin="lower", cmap="Greys", interpolation="nearest",
              extent=(0, max(len(roll), 1) / steps_per_quarter, pianoroll.LOWEST - 0.5,
                      pianoroll.LOWEST + pianoroll.KEYS - 0.5))
    if primer_end > 0:
        ax.axvspan(0, primer_end, color="tab:blue", alpha=0.12, label="primer")
        ax.axvline(primer_end, color="tab:blue", linewidth=1.5)
        ax.legend(loc="upper right")
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or Path(path).stem)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
