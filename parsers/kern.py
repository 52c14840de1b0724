"""Humdrum ``**kern`` output to a checked score and MusicXML (music21, the ``music`` extra).

The model may write the ``**ekern``/``**bekern`` forms of GrandStaff and the Sheet Music
Transformer, whose tokens are split by ``@`` and ``·`` (and, flattened, use ``<b>``, ``<t>``
and ``<s>`` for newline, tab and space). They are normalised to ``**kern`` first, because
music21 reads any other exclusive interpretation silently as an empty score.

A call is bounded by a deadline (``MAX_KERN_SECONDS``), not by the size of the score: a
watchdog thread raises ``_Deadline`` inside the parsing thread when its CPU time is up, which
stops music21 between two Python instructions, and the call raises ``KernParseError``.
"""

from __future__ import annotations

import ctypes
import io
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import Field

from parsers.base import Frozen, KernParseError, check_size

if TYPE_CHECKING:
    from music21.stream import Score as Music21Score

__all__ = [
    "MAX_KERN_SECONDS",
    "Score",
    "kern_to_ekern",
    "normalise_kern",
    "parse_kern",
]

#: Most CPU seconds a ``parse_kern`` call may use (reading and writing with music21) before
#: it stops with a ``KernParseError``: a bound on time, not on the score. CPU time of the
#: calling thread, not wall time, so a busy machine never refuses a real score. Measured
#: with ``python benchmarks/kern_deadline.py`` (music21 10.5, a busy 2-core CPU): the
#: longest real score in the field's corpora, Beethoven's string quartet op. 18 no. 1,
#: 4th movement (3,077 lines, 6,611 notes and rests, 4 parts), uses 23.9 s with MusicXML
#: (6.1 s without; 214 s wall on that machine); a 1,027-line piano waltz 3.5 s. The
#: deadline is five times the slowest, so every real score parses, and a hostile text
#: (one measure of thousands of notes: music21's export is quadratic in it) ends here.
MAX_KERN_SECONDS = 120.0

#: How often the watchdog reads the parsing thread's clock.
_POLL_SECONDS = 0.05
_T = TypeVar("_T")
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


def _load_music21() -> None:
    try:
        import music21.converter
        import music21.musicxml.m21ToXml  # noqa: F401
    except ImportError as error:
        raise ImportError("parse_kern needs music21: pip install 'docvlm[music]'") from error


def _music21(kern: str, raw: str) -> Music21Score:
    _load_music21()
    from music21 import converter
    from music21.stream import Score as Music21Score

    try:
        parsed = converter.parseData(kern, format="humdrum")
    except Exception as error:  # music21 raises many unrelated types on bad Humdrum
        raise KernParseError(f"music21 could not read the kern: {error}", raw) from error
    if not isinstance(parsed, Music21Score):
        raise KernParseError("the kern did not form a score", raw)
    return parsed


class _Deadline(BaseException):
    """Raised in the parsing thread by its watchdog. Not an ``Exception``, so that none of
    music21's ``except Exception`` takes it for an error of its own and goes on."""


def _raise_in(thread: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in ``thread`` at its next Python instruction (None withdraws
    one not yet raised)."""
    value = ctypes.py_object(exception) if exception is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), value)


def _cpu_clock(thread: int) -> Callable[[], float]:
    """Seconds of CPU ``thread`` has used: the deadline counts the parser's own work, so a
    busy machine does not refuse a real score. Wall-clock time where the platform has no
    clock per thread."""
    try:
        clock = time.pthread_getcpuclockid(thread)
    except (AttributeError, OSError):
        return time.monotonic
    return lambda: time.clock_gettime(clock)


class _QuietDeadlines:
    """While a deadline runs, ``sys.unraisablehook``: the watchdog's exception landed in a
    finaliser or a gc callback, where Python reports it as unraisable and drops it; it is
    raised again at the next poll, so it is not reported. Anything else goes to the hook
    that was there before, which is back once no deadline runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._previous = sys.unraisablehook

    def __call__(self, unraisable: sys.UnraisableHookArgs) -> None:
        if unraisable.exc_type is not _Deadline:
            self._previous(unraisable)

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                self._previous, sys.unraisablehook = sys.unraisablehook, self
            self._running += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                sys.unraisablehook = self._previous


_QUIET = _QuietDeadlines()


def _within(seconds: float | None, work: Callable[[], _T], raw: str) -> _T:
    """``work()``, stopped with a ``KernParseError`` once it has used ``seconds`` of CPU."""
    if seconds is None:
        return work()
    thread, lock, ended = threading.get_ident(), threading.Lock(), threading.Event()
    clock = _cpu_clock(thread)
    start, fired = clock(), [False]

    def watch() -> None:
        # raised again at every poll until `work` ends: an asynchronous exception that
        # lands in a finaliser (``__del__``, a gc callback) is dropped there (``_QuietDeadlines``)
        while not ended.wait(_POLL_SECONDS):
            try:
                used = clock() - start
            except OSError:  # the thread is gone: nothing left to stop
                return
            if used >= seconds:
                with lock:  # never once `work` has ended: that is set under the lock
                    if not ended.is_set():
                        fired[0] = True
                        _raise_in(thread, _Deadline)

    def stop() -> None:
        with lock:
            if not ended.is_set():
                ended.set()
                if fired[0]:  # fired as `work` ended and not yet raised: withdraw it
                    _raise_in(thread, None)

    with _QUIET:
        try:
            threading.Thread(target=watch, name="parse_kern deadline", daemon=True).start()
            try:
                return work()
            finally:
                stop()
        except _Deadline:
            stop()  # it may have landed in the `finally` above, before `stop` ran
            raise KernParseError(
                f"music21 did not finish within {seconds:g} s of CPU, the parser's deadline",
                raw,
            ) from None


def _convert(kern: str, raw: str, musicxml: bool) -> tuple[int, int, str | None]:
    """(notes, parts, MusicXML or None) of the kern, as music21 reads and writes it."""
    score = _music21(kern, raw)
    notes = len(score.flatten().notes)
    if notes == 0:
        raise KernParseError("no notes in the score", raw)
    return notes, len(score.parts), _export(score, raw) if musicxml else None


def parse_kern(
    text: str, *, musicxml: bool = True, timeout: float | None = MAX_KERN_SECONDS
) -> Score:
    """Read kern (or ekern/bekern) output into a ``Score`` with MusicXML.

    Cut-off output is repaired (partial last record dropped, open spines closed, field
    counts balanced) and the repairs listed. Raises ``KernParseError`` when music21 cannot
    read the result or no notes come out of it, and when reading and writing it take more
    than ``timeout`` seconds (``MAX_KERN_SECONDS`` by default, far above what real scores
    take; ``None``: no deadline). ``musicxml=False`` skips the MusicXML export, about two
    thirds of the time, when only the kern and counts are needed (evaluation, validation).
    """
    check_size(text)
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive seconds or None, not {timeout}")
    kern, repairs = normalise_kern(text)
    _load_music21()  # before the deadline starts: an import is never cut short
    notes, parts, xml = _within(timeout, lambda: _convert(kern, text, musicxml), text)
    return Score(
        kern=kern,
        note_count=notes,
        part_count=parts,
        musicxml=xml,
        repairs=tuple(repairs),
    )


def _export(score: Music21Score, raw: str) -> str:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    try:
        data: bytes = GeneralObjectExporter(score).parse()
    except Exception as error:  # music21 export errors have no common base class
        raise KernParseError(f"music21 could not write MusicXML: {error}", raw) from error
    return data.decode("utf-8")
