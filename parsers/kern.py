"""Humdrum ``**kern`` output to a checked score and MusicXML (music21, the ``music`` extra).

The model may write the ``**ekern``/``**bekern`` forms of GrandStaff and the Sheet Music
Transformer, whose tokens are split by ``@`` and ``·`` (and, flattened, use ``<b>``, ``<t>``
and ``<s>`` for newline, tab and space). They are normalised to ``**kern`` first, because
music21 reads any other exclusive interpretation silently as an empty score.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from parsers.base import Frozen, KernParseError, check_size

if TYPE_CHECKING:
    from music21.stream import Score as Music21Score

__all__ = [
    "MAX_KERN_NOTES",
    "MAX_MEASURE_RECORDS",
    "Score",
    "kern_to_ekern",
    "normalise_kern",
    "parse_kern",
]

#: Most notes and rests (each chord member counts) a kern text may hold: a bound on time,
#: not on what real scores hold. Time grows about linearly with notes (measures are bounded
#: below); measured on a busy 2-core CPU (music21 9), the corpus's real Paderewski waltz
#: cut at barlines: 598 lines (419 notes) read in 0.55 s, 2.6 s with MusicXML; 796 lines
#: (531) 0.46 s / 1.7 s; the whole 1,015 lines (656 notes) 1.0 s / 2.3 s. 1,000 notes keep
#: a call within a few seconds and take every real score of the held-out set (252-620 lines);
#: the slowest text within them (1,000 sixteenths in full measures, tests/parsers/
#: worst_cases.py) takes 4.8 s with MusicXML on the same machine.
MAX_KERN_NOTES = 1000
#: Most data records between two barlines. music21's MusicXML export is quadratic in the
#: notes of one measure (a 160-note measure takes seconds); real measures hold a few dozen.
MAX_MEASURE_RECORDS = 64

_FLAT = {"<b>": "\n", "<t>": "\t", "<s>": " "}
_SPLITTERS = ("@", "·")
_CONTAINER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<container><rootfiles><rootfile full-path="score.musicxml" '
    'media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>\n'
)


class Score(Frozen):
    """A score read from kern: the normalised kern, its notes and its MusicXML."""

    kern: str = Field(description="normalised **kern text that was converted")
    note_count: int = Field(description="notes as music21 counts them (a chord counts once)")
    part_count: int = Field(description="parts in the score")
    musicxml: str | None = Field(
        default=None, description="MusicXML (partwise) written by music21; None if skipped"
    )
    repairs: tuple[str, ...] = Field(default=(), description="what was fixed in the kern")

    def write(self, path: str | Path) -> Path:
        """Write ``.musicxml``/``.xml`` as text, or ``.mxl`` as compressed MusicXML."""
        target = Path(path)
        if self.musicxml is None:
            raise ValueError("this score was parsed with musicxml=False; nothing to write")
        if target.suffix.lower() == ".mxl":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("META-INF/container.xml", _CONTAINER)
                archive.writestr("score.musicxml", self.musicxml)
            target.write_bytes(buffer.getvalue())
        elif target.suffix.lower() in (".musicxml", ".xml"):
            target.write_text(self.musicxml, encoding="utf-8")
        else:
            raise ValueError(f"{target.name}: write .musicxml, .xml or .mxl")
        return target

    def to_music21(self) -> Music21Score:
        """A fresh music21 score parsed from ``kern``."""
        return _music21(self.kern, self.kern)


def kern_to_ekern(kern: str) -> str:
    """The ``**ekern`` form of a kern text: tokens split into '·'-joined parts.

    Used to make training targets in the Sheet Music Transformer's format, and to check
    that ``normalise_kern`` undoes it.
    """
    out = []
    for line in kern.splitlines():
        if line.startswith("!") or line.startswith("*"):
            out.append(line.replace("**kern", "**ekern_1.0"))
            continue
        fields = []
        for value in line.split("\t"):
            if value.startswith("="):
                fields.append(value)
                continue
            # between a duration and what follows it, and after each pitch letter run
            parts, current = [], ""
            for ch in value:
                if (
                    current
                    and (current[-1].isdigit() or current[-1] == ".") != (ch.isdigit() or ch == ".")
                    and ch != " "
                ):
                    parts.append(current)
                    current = ""
                current += ch
            parts.append(current)
            fields.append("·".join(parts))
        out.append("\t".join(fields))
    return "\n".join(out) + ("\n" if kern.endswith("\n") else "")


def normalise_kern(text: str) -> tuple[str, list[str]]:
    """Turn model output into well-formed ``**kern`` and list the repairs made."""
    repairs: list[str] = []
    body = text.replace("\r\n", "\n")
    for token, replacement in _FLAT.items():
        body = body.replace(token, replacement)
    ended = body.endswith("\n")
    lines = body.split("\n")
    if ended:
        lines.pop()
    out: list[str] = []
    spines = 0
    header = False
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        if not line.strip():
            continue
        if line.startswith("!!"):
            out.append(line)
            continue
        # ekern's splitters go from tokens; comments and text keep their '@'
        fields = [f if f.startswith("!") else _unsplit(f) for f in line.split("\t")]
        if spines == 0:
            if not fields[0].startswith("**"):
                continue  # text before the header carries no music
            fields = ["**kern" if f.startswith(("**ekern", "**bekern")) else f for f in fields]
            out.append("\t".join(fields))
            spines = len(fields)
            header = True
            continue
        if last and not ended and not _is_terminator(fields, spines):
            repairs.append("dropped a partial last record")
            break
        if len(fields) != spines:
            filler = (
                "*" if fields[0].startswith("*") else ("!" if fields[0].startswith("!") else ".")
            )
            repairs.append(f"record {index + 1} had {len(fields)} fields for {spines} spines")
            fields = (fields + [filler] * spines)[:spines]
        if fields[0].startswith("*") and not fields[0].startswith("**"):
            fields = _fix_merges(fields, repairs, index)
            spines = _spines_after(fields)
        out.append("\t".join(fields))
        if spines == 0:
            break
    if not header:  # reference records (!!!) alone hold no music
        raise KernParseError("no **kern header in the output", text)
    if spines > 0:
        out.append("\t".join(["*-"] * spines))
        repairs.append(f"closed {spines} open spine(s) with *-")
    return "\n".join(out) + "\n", repairs


def _unsplit(value: str) -> str:
    for splitter in _SPLITTERS:
        value = value.replace(splitter, "")
    return value


def _size_error(kern: str) -> str | None:
    notes = measure = 0
    for line in kern.splitlines():
        if line.startswith("="):
            measure = 0
            continue
        if line.startswith(("*", "!")):
            continue
        measure += 1
        if measure > MAX_MEASURE_RECORDS:
            return f"a measure of more than {MAX_MEASURE_RECORDS} records"
        notes += sum(len(field.split()) for field in line.split("\t") if field != ".")
        if notes > MAX_KERN_NOTES:
            return f"more than {MAX_KERN_NOTES} notes and rests"
    return None


def _is_terminator(fields: list[str], spines: int) -> bool:
    return len(fields) == spines and all(f == "*-" for f in fields)


def _fix_merges(fields: list[str], repairs: list[str], index: int) -> list[str]:
    """A lone ``*v`` (no neighbouring ``*v``) is invalid Humdrum: make it a null token."""
    fixed = list(fields)
    for i, value in enumerate(fields):
        if value == "*v":
            left = i > 0 and fields[i - 1] == "*v"
            right = i + 1 < len(fields) and fields[i + 1] == "*v"
            if not (left or right):
                fixed[i] = "*"
                repairs.append(f"record {index + 1}: removed an unpaired *v")
    return fixed


def _spines_after(fields: list[str]) -> int:
    count, i = 0, 0
    while i < len(fields):
        value = fields[i]
        if value == "*v":
            while i < len(fields) and fields[i] == "*v":
                i += 1
            count += 1
            continue
        count += {"*^": 2, "*-": 0, "*+": 2}.get(value, 1)
        i += 1
    return count


def _music21(kern: str, raw: str) -> Music21Score:
    try:
        from music21 import converter
    except ImportError as error:
        raise ImportError("parse_kern needs music21: pip install 'docvlm[music]'") from error
    try:
        parsed = converter.parseData(kern, format="humdrum")
    except Exception as error:  # music21 raises many unrelated types on bad Humdrum
        raise KernParseError(f"music21 could not read the kern: {error}", raw) from error
    from music21.stream import Score as Music21Score

    if not isinstance(parsed, Music21Score):
        raise KernParseError("the kern did not form a score", raw)
    return parsed


def parse_kern(text: str, *, musicxml: bool = True) -> Score:
    """Read kern (or ekern/bekern) output into a ``Score`` with MusicXML.

    Cut-off output is repaired (partial last record dropped, open spines closed, field
    counts balanced) and the repairs listed. Raises ``KernParseError`` when music21 cannot
    read the result or no notes come out of it, and before music21 sees it when the text
    holds more than ``MAX_KERN_NOTES`` notes or a measure of more than
    ``MAX_MEASURE_RECORDS`` records. ``musicxml=False`` skips the MusicXML
    export, about three quarters of the time, when only the kern and counts are needed
    (evaluation, validation).
    """
    check_size(text)
    kern, repairs = normalise_kern(text)
    too_large = _size_error(kern)
    if too_large:
        raise KernParseError(f"{too_large}: over the parser's limit, which bounds its time", text)
    score = _music21(kern, text)
    notes = len(score.flatten().notes)
    if notes == 0:
        raise KernParseError("no notes in the score", text)
    return Score(
        kern=kern,
        note_count=notes,
        part_count=len(score.parts),
        musicxml=_export(score, text) if musicxml else None,
        repairs=tuple(repairs),
    )


def _export(score: Music21Score, raw: str) -> str:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    try:
        data: bytes = GeneralObjectExporter(score).parse()
    except Exception as error:  # music21 export errors have no common base class
        raise KernParseError(f"music21 could not write MusicXML: {error}", raw) from error
    return data.decode("utf-8")
