"""Sources to documents: files, folders (recursive) and zip/tar archives, safely.

Folders are walked recursively in sorted order, skipping hidden files and folders, and
skipping files that are clearly not documents (neither their content nor their name says
PDF, image or archive: a README or a ``.json`` beside the scans); ``include`` and
``exclude`` globs select files further. A file named on its own is always read. Only
regular files (or links to them) are opened: a named pipe, socket or device, in a folder
or named on its own, is reported before a byte is read (reading a pipe waits forever).
Archives are recognised by content (office and other zip-based formats are not archives)
and read in memory, never extracted: members with absolute or ``..`` paths, links and
special files are refused (each reported, the rest read), and member count and size are
bounded.
"""

from __future__ import annotations

import fnmatch
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from docvlm.errors import InputError, InputLimitError, UnsupportedInputError
from docvlm.reading.render import Source, head_bytes, not_regular, sniff, source_name
from docvlm.settings import Limits

__all__ = ["DOCUMENT_SUFFIXES", "Item", "expand_sources", "read_member"]

#: Names that say "document" even when the content is damaged: such a file in a folder is
#: read (and its damage reported), never skipped.
DOCUMENT_SUFFIXES = frozenset(
    (  # noqa: SIM905 - one line per family reads better than 25 quoted items
        ".pdf .tif .tiff .png .jpg .jpeg .jpe .jp2 .j2k .jpx .bmp .gif .webp .pbm .pgm .ppm "
        ".pnm .zip .tar .tgz .gz .bz2 .xz .tbz2 .txz"
    ).split()
)

#: Zip-based formats that are documents of their own, not archives of scans: a marker
#: member says which.
_CONTAINERS = {
    "mimetype": "an OpenDocument or EPUB file",
    "[Content_Types].xml": "an Office Open XML file (docx, xlsx, pptx)",
    "META-INF/MANIFEST.MF": "a Java archive",
}

OnSkip = Callable[[str, str], None]


@dataclass(frozen=True)
class Item:
    """One document to read (``source``), or why an entry cannot be read (``error``)."""

    name: str
    source: Source | None
    error: InputError | None = None


def _is_archive(path: Path, head: bytes) -> bool:
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return True
    return (len(head) >= 262 and head[257:262] == b"ustar") or _is_compressed_tar(path, head)


def _container(path: Path) -> str | None:
    """What a zip-based document format is (``an OpenDocument file``), or None for a zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    markers = set(names)
    for marker, kind in _CONTAINERS.items():
        # ODF and EPUB store `mimetype` first; OOXML and JAR markers may sit anywhere
        if (names[:1] == [marker]) if marker == "mimetype" else (marker in markers):
            return kind
    return None


def _is_compressed_tar(path: Path, head: bytes) -> bool:
    if not head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")):
        return False
    try:
        with tarfile.open(path) as archive:
            return archive.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _unsafe(name: str) -> str | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (name[1:3] == ":\\"):
        return "unsafe path (absolute or with ..)"
    return None


def _hidden(name: str) -> bool:
    return any(
        (part.startswith(".") and part not in (".", "..")) or part == "__MACOSX"
        for part in PurePosixPath(name).parts
    )


def _not_document(member: str, data: bytes, chosen: _Filter | None) -> bool:
    """An archive member skipped as a file in a folder would be: neither its content nor
    its name says document (a README.txt), and no ``include`` glob asks for it. Reported
    through ``on_skip``."""
    if chosen is None or chosen.include:
        return False
    if sniff(data[:512]) is not None or PurePosixPath(member).suffix.lower() in DOCUMENT_SUFFIXES:
        return False
    chosen.skip(member, "not a document (by content and name)")
    return True


def _zip_members(path: Path, limits: Limits, chosen: _Filter | None = None) -> Iterator[Item]:
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _hidden(m.filename)]
        yield from _bounded(path, len(members), limits)
        for member in sorted(members, key=lambda m: m.filename)[: limits.archive_max_members]:
            name = f"{path}!{member.filename}"
            is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
            reason = _unsafe(member.filename) or ("symbolic link" if is_link else None)
            if reason is None and member.file_size > limits.archive_max_bytes:
                reason = f"member of {member.file_size:,} bytes is over the limit"
            if reason:
                yield Item(name, None, InputLimitError(reason, source=name))
                continue
            with archive.open(member) as handle:
                data = handle.read(limits.archive_max_bytes + 1)
            if len(data) > limits.archive_max_bytes:  # a lying size header
                yield Item(
                    name, None, InputLimitError("member is over the size limit", source=name)
                )
                continue
            if not _not_document(name, data, chosen):
                yield Item(name, data)


def _tar_members(path: Path, limits: Limits, chosen: _Filter | None = None) -> Iterator[Item]:
    with tarfile.open(path) as archive:
        members = [m for m in archive.getmembers() if not m.isdir() and not _hidden(m.name)]
        yield from _bounded(path, len(members), limits)
        for member in sorted(members, key=lambda m: m.name)[: limits.archive_max_members]:
            name = f"{path}!{member.name}"
            reason = _unsafe(member.name)
            if reason is None and not member.isfile():
                reason = "link or special file"
            if reason is None and member.size > limits.archive_max_bytes:
                reason = f"member of {member.size:,} bytes is over the limit"
            if reason:
                yield Item(name, None, InputLimitError(reason, source=name))
                continue
            handle = archive.extractfile(member)
            data = handle.read() if handle else b""
            if not _not_document(name, data, chosen):
                yield Item(name, data)


def read_member(path: Path, member: str, limits: Limits) -> bytes:
    """The bytes of ``member`` of the zip or tar archive ``path`` (a document the runner
    named ``archive.zip!member``), read on its own and refused as the walk refuses it; a
    member of a nested archive (``a.zip!b.zip!c.pdf``) is found by walking the outer one.
    ``InputError`` when it is not there or may not be read."""
    name = f"{path}!{member}"
    try:
        if "!" not in member and zipfile.is_zipfile(path):
            return _zip_member(path, member, name, limits)
        if "!" not in member and tarfile.is_tarfile(path):
            return _tar_member(path, member, name, limits)
    except (KeyError, zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise InputError("no such member in the archive", source=name) from error
    for item in expand_sources([path], limits):
        if item.name == name and isinstance(item.source, bytes):
            return item.source
    raise InputError("no such member in the archive", source=name)


def _zip_member(path: Path, member: str, name: str, limits: Limits) -> bytes:
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
        link = (info.external_attr >> 16) & 0o170000 == 0o120000
        reason = _unsafe(member) or ("symbolic link" if link else None)
        if reason:
            raise InputLimitError(reason, source=name)
        with archive.open(info) as handle:
            data = handle.read(limits.archive_max_bytes + 1)
    if len(data) > limits.archive_max_bytes:  # a size header may lie: the bytes do not
        raise InputLimitError("member is over the size limit", source=name)
    return data


def _tar_member(path: Path, member: str, name: str, limits: Limits) -> bytes:
    with tarfile.open(path) as archive:
        entry = archive.getmember(member)
        reason = _unsafe(member) or (None if entry.isfile() else "link or special file")
        if reason is None and entry.size > limits.archive_max_bytes:
            reason = f"member of {entry.size:,} bytes is over the limit"
        if reason:
            raise InputLimitError(reason, source=name)
        extracted = archive.extractfile(entry)
        return extracted.read() if extracted is not None else b""


def _bounded(path: Path, count: int, limits: Limits) -> Iterator[Item]:
    if count > limits.archive_max_members:
        yield Item(
            str(path),
            None,
            InputLimitError(
                f"{count:,} members, over the limit of {limits.archive_max_members:,}; "
                "the first ones are read",
                source=str(path),
            ),
        )


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


@dataclass(frozen=True)
class _Filter:
    include: Sequence[str]
    exclude: Sequence[str]
    on_skip: OnSkip | None

    def selects(self, relative: str) -> bool:
        """Globs match the path below the folder given, or the file name alone."""
        candidates = (relative, PurePosixPath(relative).name)

        def matches(patterns: Sequence[str]) -> bool:
            return any(fnmatch.fnmatch(c, p) for p in patterns for c in candidates)

        return (not self.include or matches(self.include)) and not matches(self.exclude)

    def skip(self, name: str, reason: str) -> None:
        if self.on_skip is not None:
            self.on_skip(name, reason)


def _expand_folder(folder: Path, limits: Limits, chosen: _Filter) -> Iterator[Item]:
    for file in _walk(folder):
        relative = file.relative_to(folder).as_posix()
        if not chosen.selects(relative):
            chosen.skip(str(file), "not selected by --include/--exclude")
            continue
        refused = not_regular(file, str(file))
        if refused is not None:
            yield Item(str(file), None, refused)
            continue
        try:
            head = head_bytes(file, 512)
        except OSError as error:
            yield Item(str(file), None, InputError(f"cannot read ({error})", source=str(file)))
            continue
        known = sniff(head) is not None or _is_archive(file, head)
        if not known and file.suffix.lower() not in DOCUMENT_SUFFIXES and not chosen.include:
            chosen.skip(str(file), "not a document (by content and name)")
            continue
        yield from _expand_file(file, limits, head, chosen)


def _expand_file(
    path: Path, limits: Limits, head: bytes, chosen: _Filter | None = None
) -> Iterator[Item]:
    name = str(path)
    if not _is_archive(path, head):
        yield Item(name, path)
        return
    if zipfile.is_zipfile(path):
        kind = _container(path)
        if kind is not None:
            reason = f"{kind}, not a PDF, an image or an archive of them"
            yield Item(name, None, UnsupportedInputError(reason, source=name))
            return
        reader = _zip_members
    else:
        reader = _tar_members
    try:
        yield from reader(path, limits, chosen)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
        yield Item(name, None, UnsupportedInputError(f"damaged archive ({error})", source=name))


def _expand_path(path: Path, limits: Limits, chosen: _Filter) -> Iterator[Item]:
    name = str(path)
    if not path.exists():
        yield Item(name, None, InputError("no such file", source=name))
    elif path.is_dir():
        yield from _expand_folder(path, limits, chosen)
    elif (refused := not_regular(path, name)) is not None:
        yield Item(name, None, refused)
    else:
        try:
            head = head_bytes(path, 512)
        except OSError as error:
            yield Item(name, None, InputError(f"cannot read ({error})", source=name))
            return
        yield from _expand_file(path, limits, head, chosen)


def expand_sources(
    sources: Iterable[Source],
    limits: Limits | None = None,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    on_skip: OnSkip | None = None,
) -> Iterator[Item]:
    """Each document behind ``sources``: files as given, folders and archives expanded.

    In folders, files that are clearly not documents are skipped, as are files that the
    ``include`` / ``exclude`` globs leave out (``"*.pdf"``, ``"2024/*"``); ``on_skip``
    hears each skipped path and why. Files named directly are always read.
    """
    limits = limits or Limits()
    chosen = _Filter(tuple(include), tuple(exclude), on_skip)
    for source in sources:
        if isinstance(source, str | Path):
            yield from _expand_path(Path(source), limits, chosen)
        elif isinstance(source, bytes) and source[:4] == b"PK\x03\x04":
            yield Item(
                "<bytes>",
                None,
                UnsupportedInputError("archives are read from files, not bytes", source="<bytes>"),
            )
        else:
            yield Item(source_name(source), source)
