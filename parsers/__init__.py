"""Model text to typed objects: tables, molecules, scores, boxes and OCR lines.

Torch-free and independent of ``docvlm``: every parser takes the text a model wrote and
returns a frozen pydantic model, or raises a ``ParseError`` subclass that carries the raw
text. RDKit (``parse_smiles``) and music21 (``parse_kern``) load only when those are used.

Errors::

    ParseError (ValueError)
    ├── InputTooLargeError   text longer than any model output can be
    ├── TableParseError      no cell in the text, or a hostile grid size
    ├── SmilesParseError     Molecule.to_rdkit() on an invalid molecule
    └── KernParseError       no header, unreadable Humdrum, or no notes
"""

from parsers.base import (
    MAX_INPUT_CHARS,
    Box,
    InputTooLargeError,
    KernParseError,
    ParseError,
    SmilesParseError,
    SpanScore,
    TableParseError,
)
from parsers.kern import Score, kern_to_ekern, normalise_kern, parse_kern
from parsers.locations import Detection, box_from_bins, box_to_tokens, parse_locations
from parsers.smiles import Molecule, parse_smiles
from parsers.table import Cell, Table
from parsers.table_reader import parse_table
from parsers.text import TextLine, TextLines, parse_text

__all__ = [
    "MAX_INPUT_CHARS",
    "Box",
    "Cell",
    "Detection",
    "InputTooLargeError",
    "KernParseError",
    "Molecule",
    "ParseError",
    "Score",
    "SmilesParseError",
    "SpanScore",
    "Table",
    "TableParseError",
    "TextLine",
    "TextLines",
    "box_from_bins",
    "box_to_tokens",
    "kern_to_ekern",
    "normalise_kern",
    "parse_kern",
    "parse_locations",
    "parse_smiles",
    "parse_table",
    "parse_text",
]
