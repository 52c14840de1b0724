"""Sources to documents: files, folders (recursive) and zip/tar archives, safely.

Folders are walked recursively in sorted order, skipping hidden files and folders.
Archives are recognised by content and read in memory, never extracted: members with
absolute or ``..`` paths, links and special files are refused (each reported, the
rest read), and member count and size are bounded.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from docvlm.errors import InputError, InputLimitError, UnsupportedInputError
from docvlm.limits import Limits
from docvlm.render import Source, head_bytes, source_name

__all__ = ["Item", "expand_sources"]


@dataclass(frozen=True)
class Item:
    """One document to read (``source``), or why an entry cannot be read (``error``)."""

    name: str
    source: Source | None
    error: InputError | None = None


def _is_archive(path: Path) -> bool:
    head = head_bytes(path, 512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return True
    return (len(head) >= 262 and head[257:262] == b"ustar") or _is_compressed_tar(path, head)


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


def _zip_members(path: Path, limits: Limits) -> Iterator[Item]:
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
            yield Item(name, data)


def _tar_members(path: Path, limits: Limits) -> Iterator[Item]:
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
            yield Item(name, data)


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


def _expand_path(path: Path, limits: Limits) -> Iterator[Item]:
    name = str(path)
    if not path.exists():
        yield Item(name, None, InputError("no such file", source=name))
    elif path.is_dir():
        for file in _walk(path):
            yield from _expand_path(file, limits)
    elif _is_archive(path):
        reader = _zip_members if zipfile.is_zipfile(path) else _tar_members
        try:
            yield from reader(path, limits)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
            yield Item(name, None, UnsupportedInputError(f"damaged archive ({error})", source=name))
    else:
        yield Item(name, path)


def expand_sources(sources: Iterable[Source], limits: Limits | None = None) -> Iterator[Item]:
    """Each document behind ``sources``: files as given, folders and archives expanded."""
    limits = limits or Limits()
    for source in sources:
        if isinstance(source, str | Path):
            yield from _expand_path(Path(source), limits)
        elif isinstance(source, bytes) and source[:4] == b"PK\x03\x04":
            yield Item(
                "<bytes>",
                None,
                UnsupportedInputError("archives are read from files, not bytes", source="<bytes>"),
            )
        else:
            yield Item(source_name(source), source)
