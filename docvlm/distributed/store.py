"""Files for the Ray runner, local or behind any URI pyarrow opens (``s3://``, ``gs://``,
``hdfs://``): listing the sources, and the destination folder of part files (an ``Output``
of kind ``parquet-parts`` or ``jsonl-parts``, ``Output.parts``).

A destination holds ``part-<digest>.parquet`` (or ``.jsonl``) files and ``_job.json``, the
job key its parts were written under. A part is staged in ``_staging/`` and moved into
place whole (a rename on a local disk, an object that appears complete on a store), and
its name is a digest of the records in it: a retried write task replaces its own part
instead of adding a copy. So names are not write order: parts are read by modification
time, then name (``docvlm.archive.readback.part_files`` says why), and of a source
written by several runs (its bytes changed) the last part counts. What the parts hold
(source, content hash, status) is what a rerun skips.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from docvlm.archive.disk import fsync_dir
from docvlm.archive.edits import apply_log, read_log
from docvlm.archive.output import Output
from docvlm.archive.parquet import arrow_schema, document_rows
from docvlm.archive.readback import JOB_FILE, document_files
from docvlm.document import Document
from docvlm.errors import MissingDependencyError, SettingsError
from docvlm.reading.sources import DOCUMENT_SUFFIXES

__all__ = ["Parts", "list_uri", "read_uri"]

STAGING = "_staging"
WRITE_ATTEMPTS = 4


def _fs() -> Any:
    try:
        import pyarrow.fs
        import pyarrow.parquet  # loaded here so a missing piece fails early
    except ImportError as error:
        raise MissingDependencyError(
            "the Ray runner needs pyarrow: pip install 'docvlm[ray]'"
        ) from error
    return pyarrow.fs


def list_uri(
    uri: str, include: Sequence[str], exclude: Sequence[str], on_skip: Callable[[str], None]
) -> list[str]:
    """Files behind a URI, sorted, as the local runner walks a folder: hidden ones left
    out, ``include``/``exclude`` globs on the path below the folder or the file name, and
    (without ``include``) names that do not say document left out."""
    fs = _fs()
    filesystem, path = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(path)
    if info.type != fs.FileType.Directory:
        return [uri]
    scheme = uri.split("://", 1)[0]
    found = []
    for entry in filesystem.get_file_info(fs.FileSelector(path, recursive=True)):
        if entry.type != fs.FileType.File:
            continue
        relative = PurePosixPath(entry.path).relative_to(path.rstrip("/")).as_posix()
        name = f"{scheme}://{entry.path}"
        if any(part.startswith(".") for part in PurePosixPath(relative).parts):
            continue
        candidates = (relative, PurePosixPath(relative).name)
        chosen = not include or any(fnmatch.fnmatch(c, p) for p in include for c in candidates)
        excluded = any(fnmatch.fnmatch(c, p) for p in exclude for c in candidates)
        unknown = PurePosixPath(relative).suffix.lower() not in DOCUMENT_SUFFIXES
        if not chosen or excluded or (unknown and not include):
            on_skip(name)
        else:
            found.append(name)
    return sorted(found)


def read_uri(uri: str) -> bytes:
    filesystem, path = _fs().FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


class Parts:
    """The destination folder of parts: its job key, the records it holds, new parts."""

    def __init__(self, output: Output) -> None:
        if output.kind not in ("parquet-parts", "jsonl-parts"):
            raise ValueError(
                f"{output}: the Ray runner writes a folder of parts, not {output.kind}"
            )
        self.output = output
        self.location = str(output)
        self.format = "jsonl" if output.kind == "jsonl-parts" else "parquet"
        fs = _fs()
        if isinstance(output.location, str):
            self.fs, root = fs.FileSystem.from_uri(output.location)
            self.root = str(root)
        else:
            self.fs, self.root = fs.LocalFileSystem(), str(output.location.resolve())

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def _parts(self) -> list[str]:
        fs = _fs()
        if self.fs.get_file_info(self.root).type != fs.FileType.Directory:
            return []
        suffix = f".{self.format}"
        found = [
            entry
            for entry in self.fs.get_file_info(fs.FileSelector(self.root))
            if entry.type == fs.FileType.File
            and entry.base_name.startswith("part-")
            and entry.base_name.endswith(suffix)
        ]
        # write order, as Output.records reads a local folder (readback.part_files)
        found.sort(key=lambda entry: (entry.mtime_ns or 0, entry.base_name))
        return [entry.path for entry in found]

    def check_not_local_output(self) -> None:
        """``SettingsError`` for a folder the local runner wrote (its manifest, or a
        folder per document): parts added there would sit beside records read another
        way. Only a local path can be one (the local runner writes no URI)."""
        if isinstance(self.output.location, str) or not self.output.location.is_dir():
            return
        manifest = self.output.manifest_file
        held = manifest.name if manifest.exists() else None
        if held is None and document_files(self.output.location):
            held = "NAME/document.json"
        if held is not None:
            raise SettingsError(
                f"{self.output}: an output the local runner wrote (it holds {held}); the "
                "Ray runner writes a folder of parts of its own: choose another --out, or "
                "convert into it without --ray"
            )

    def prepare(self, fingerprint: str, key_json: str, redo: bool) -> None:
        """Create the folder for this job (one job writes into a folder at a time); a
        folder holding another job's records is refused (``redo`` empties it first), and
        so is one the local runner wrote (``check_not_local_output``)."""
        self.check_not_local_output()
        self.fs.create_dir(self.root, recursive=True)
        staging = self._path(STAGING)
        if self.fs.get_file_info(staging).type == _fs().FileType.Directory:
            self.fs.delete_dir_contents(staging)  # parts a killed job never moved into place
        job = self._path(JOB_FILE)
        found = self.fs.get_file_info(job).type == _fs().FileType.File
        if redo:
            for part in self._parts():
                self.fs.delete_file(part)
        elif found:
            with self.fs.open_input_stream(job) as stream:
                recorded = json.loads(stream.read())["fingerprint"]
            if recorded != fingerprint:
                raise ValueError(
                    f"{self.location} holds records of another job (other tasks, "
                    "checkpoints, DPI, token limits or pages); write elsewhere or redo"
                )
        if redo or not found:
            record = json.dumps({"fingerprint": fingerprint, "key": json.loads(key_json)})
            self._put(JOB_FILE, record.encode())

    def written(self) -> dict[str, tuple[str | None, str]]:
        """What the parts hold: source -> (content hash, status); a source written twice
        (its bytes changed between runs) keeps its last written record here (parts in
        write order)."""
        found: dict[str, tuple[str | None, str]] = {}
        for part in self._parts():
            if self.format == "parquet":
                import pyarrow.parquet as pq

                columns = ["source", "sha256", "document_status"]
                table = pq.read_table(part, columns=columns, filesystem=self.fs)
                for row in table.to_pylist():
                    found[row["source"]] = (row["sha256"], row["document_status"])
            else:
                with self.fs.open_input_stream(part) as stream:
                    for line in io.BytesIO(stream.read()):
                        record = json.loads(line)
                        found[record["source"]] = (record["sha256"], record["status"])
        return found

    def write(self, documents: Sequence[Document]) -> str:
        """One part holding ``documents`` (the local runner's records) with the
        destination's corrections applied, as the local runner's sinks do (a correction
        with no place in a new reading is named in its page's ``warnings``), moved into
        place whole; its name is a digest of what it holds. Returns the part's name."""
        if not self.output.is_uri:  # a store has no corrections log (``docvlm correct``)
            entries = read_log(self.output.corrections_file)
            documents = [apply_log(document, entries) for document in documents]
        digest = hashlib.sha256()
        for document in documents:
            digest.update(f"{document.source}\0{document.sha256}\0".encode())
        name = f"part-{digest.hexdigest()[:24]}.{self.format}"
        buffer = io.BytesIO()
        if self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = [row for document in documents for row in document_rows(document)]
            table = pa.Table.from_pylist(rows, schema=arrow_schema())
            pq.write_table(table, buffer, compression="zstd")
        else:
            for document in documents:
                buffer.write(document.model_dump_json().encode() + b"\n")
        for attempt in range(WRITE_ATTEMPTS):  # a store's passing errors, not our bugs
            try:
                self._put(name, buffer.getvalue())
                break
            except OSError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(2**attempt)
        return name

    def _put(self, name: str, data: bytes) -> None:
        staging = self._path(f"{STAGING}/{os.getpid()}-{name}")
        self.fs.create_dir(self._path(STAGING), recursive=True)
        if isinstance(self.fs, _fs().LocalFileSystem):
            with open(staging, "wb") as handle:  # durable before the rename, as the sinks
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, self._path(name))
            fsync_dir(Path(self.root))
            return
        with self.fs.open_output_stream(staging) as stream:
            stream.write(data)
        self.fs.move(staging, self._path(name))

    def parts(self) -> Iterator[str]:
        yield from self._parts()
