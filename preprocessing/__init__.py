"""MIDI / MusicXML / ABC / Humdrum ⇄ tensors: readers, representations and dataset writing."""

from preprocessing.piece import InputError, Piece
from preprocessing.readers import ReadOptions, expand_inputs, read_file

__all__ = ["InputError", "Piece", "ReadOptions", "expand_inputs", "read_file"]
