"""The one error a composing request raises, and the one-line message of a TensorFlow error."""

from __future__ import annotations

import re


class ComposerError(Exception):
    """A request that failed: a bad primer or setting, a request the model or server rejected,
    or a server that cannot be reached; the message is one line."""


def error_message(text: str) -> str:
    """The signature's own words from a TensorFlow error: the failed assertion's message
    ("temperature must be > 0"), else the error's first line that says something."""
    match = re.search(r"assertion failed: \[([^\]]*)\]", text)
    if match:
        return match.group(1).replace("\\'", "'")
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    useful = [s for s in lines if not s.startswith(("Graph execution error", "Detected at",
                                                     "<stack", "[["))]
    return (useful or lines or ["invalid argument"])[0][:300]
