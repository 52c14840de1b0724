"""docvlm: scanned documents to typed data with PaliGemma 2.

    from docvlm import read_table
    tables = read_table("paper.pdf", checkpoint="your/table-checkpoint")

One-call functions (``read_text``, ``read_table``, ``read_molecule``, ``read_music``,
``convert``) sit over ``DocVLM``, a client that keeps models loaded. Importing docvlm loads
none of torch, transformers, RDKit, music21 or Ray; they load when first used.
"""

from docvlm.api import convert, read_molecule, read_music, read_table, read_text
from docvlm.archive.output import Output, open_sink
from docvlm.archive.sinks import Sink
from docvlm.client import DocVLM
from docvlm.document import Document, json_schema
from docvlm.errors import (
    CheckpointError,
    CheckpointNotConfiguredError,
    CheckpointUnavailableError,
    CorruptInputError,
    DocVLMError,
    InputError,
    InputLimitError,
    MissingDependencyError,
    PageRangeError,
    PasswordRequiredError,
    SettingsError,
    SourceChangedError,
    UnsupportedInputError,
)
from docvlm.results import (
    AnswerResult,
    CaptionResult,
    LayoutResult,
    MoleculeResult,
    MusicResult,
    Page,
    Result,
    TableResult,
    TextResult,
)
from docvlm.settings import Settings
from docvlm.tasks import TASKS, TaskName, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "TASKS",
    "AnswerResult",
    "CaptionResult",
    "CheckpointError",
    "CheckpointNotConfiguredError",
    "CheckpointUnavailableError",
    "CorruptInputError",
    "DocVLM",
    "DocVLMError",
    "Document",
    "InputError",
    "InputLimitError",
    "LayoutResult",
    "MissingDependencyError",
    "MoleculeResult",
    "MusicResult",
    "Output",
    "Page",
    "PageRangeError",
    "PasswordRequiredError",
    "Result",
    "Settings",
    "SettingsError",
    "Sink",
    "SourceChangedError",
    "TableResult",
    "TaskName",
    "TaskSpec",
    "TextResult",
    "UnsupportedInputError",
    "__version__",
    "convert",
    "json_schema",
    "open_sink",
    "read_molecule",
    "read_music",
    "read_table",
    "read_text",
]
