"""Parquet output: a fixed, flat schema with one row per result (docs/etl.md lists it).

A page without results (it failed, or nothing was found) is one row with an empty
``task``; a source that could not be read at all is one row with an empty ``page``. The
result itself is kept whole as JSON in ``result_json``, its plain text in ``text``.
Every other fact of the JSON record has a typed column: integer columns that can be empty
load into pandas as nullable ``Int64`` (the file carries pandas metadata saying so), the
columns that are never empty are marked non-null, page warnings are a list of strings.

Rows are buffered and written as whole part files (``part-000000.parquet``, one row
group each), each staged under a hidden name, fsynced and renamed: a part is either
complete or absent. ``ParquetFileSink`` keeps its parts in ``NAME.parquet.parts/`` and
joins them into ``NAME.parquet`` on ``close()``; the file records in its metadata how many
parts it holds, so a join cut short by a crash is neither lost nor doubled. A write that
fails (a damaged file, a full disk) removes its staged file at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from docvlm.archive.disk import fsync_dir
from docvlm.document import Document
from docvlm.errors import MissingDependencyError
from docvlm.results import SCHEMA_VERSION

__all__ = [
    "COLUMNS",
    "ParquetFileSink",
    "ParquetPartsSink",
    "arrow_schema",
    "document_rows",
    "row_json_schema",
]

#: name -> (Arrow type name, description); the order is the column order.
COLUMNS: dict[str, tuple[str, str]] = {
    "schema_version": ("int32", "version of the record layout"),
    "document_id": ("string", "id of the record: digest of source and content hash"),
    "source": ("string", "file path as given (archive members as ARCHIVE!MEMBER)"),
    "sha256": ("string", "SHA-256 of the source's bytes (hex)"),
    "document_status": ("string", "success, partial or failure"),
    "document_error": ("string", "why the document (or some of its pages) failed"),
    "page": ("int32", "page number from 1; empty when the source could not be read"),
    "page_id": ("string", "document_id:page"),
    "page_status": ("string", "ok, parse_error or error"),
    "page_error": ("string", "why the page failed"),
    "page_width": ("int32", "rendered width in pixels"),
    "page_height": ("int32", "rendered height in pixels"),
    "page_dpi": ("float64", "render resolution (PDF pages)"),
    "page_warnings": ("list<string>", "what went less than perfectly on the page"),
    "page_rotation": ("int32", "clockwise turn (degrees) applied to read the page upright"),
    "page_skew": ("float64", "degrees the lines rose to the right, straightened to read"),
    "page_orientation_confidence": ("float64", "confidence of the orientation measure (0-1)"),
    "page_confidence": ("float64", "the page's weakest part as read (Page.confidence, 0-1)"),
    "result_index": ("int32", "position of the result on its page (reading order)"),
    "task": ("string", "text, table, molecule, music, layout, caption or ask"),
    "status": (
        "string",
        "the row's status: the result's (ok, parse_error), else the "
        "page's (error), else the document's (failure)",
    ),
    "error": ("string", "the row's error, at the same level as status"),
    "confidence": ("float64", "geometric mean token probability (0-1)"),
    "stop": ("string", "eos, length, repetition, or blank (no ink: no model call)"),
    "checkpoint": ("string", "model that wrote the result"),
    "prompt": ("string", "prompt given to the model"),
    "raw": ("string", "model output as written, <loc>/<seg> tokens kept"),
    "box_x0": ("float64", "region read, page pixels"),
    "box_y0": ("float64", "region read, page pixels"),
    "box_x1": ("float64", "region read, page pixels"),
    "box_y1": ("float64", "region read, page pixels"),
    "text": ("string", "plain text of the result (a table as Markdown, a SMILES, kern)"),
    "result_json": ("string", "the whole result as JSON (docvlm schema results, one item)"),
}


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as error:
        raise MissingDependencyError(
            "Parquet output needs pyarrow: pip install 'docvlm[parquet]'"
        ) from error
    return pyarrow


#: Columns that are never empty.
REQUIRED = ("schema_version", "document_id", "source", "document_status", "status")


def _pandas_metadata() -> str:
    """pandas metadata naming the nullable integer columns ``Int64``, so that
    ``pandas.read_parquet`` gives ``<NA>`` instead of turning them into float64 with NaN."""
    columns = [
        {"name": name, "field_name": name, "pandas_type": kind, "numpy_type": "Int64"}
        for name, (kind, _) in COLUMNS.items()
        if kind == "int32" and name not in REQUIRED
    ]
    return json.dumps(
        {"index_columns": [], "column_indexes": [], "columns": columns, "creator": {}}
    )


def arrow_schema() -> Any:
    """The ``pyarrow.Schema`` of every Parquet file docvlm writes."""
    pa = _pyarrow()

    def arrow_type(kind: str) -> Any:
        return pa.list_(pa.string()) if kind == "list<string>" else getattr(pa, kind)()

    return pa.schema(
        [
            pa.field(
                name,
                arrow_type(kind),
                nullable=name not in REQUIRED,
                metadata={"description": text},
            )
            for name, (kind, text) in COLUMNS.items()
        ],
        metadata={
            "docvlm.schema_version": str(SCHEMA_VERSION),
            "pandas": _pandas_metadata(),
        },
    )


_JSON_TYPES: dict[str, Any] = {
    "int32": "integer",
    "float64": "number",
    "string": "string",
    "list<string>": "array",
}


def row_json_schema() -> dict[str, Any]:
    """JSON Schema of one Parquet row (``docvlm schema row``)."""
    properties: dict[str, Any] = {}
    for name, (kind, text) in COLUMNS.items():
        json_type: Any = _JSON_TYPES[kind] if name in REQUIRED else [_JSON_TYPES[kind], "null"]
        properties[name] = {"type": json_type, "description": text}
        if kind == "list<string>":
            properties[name]["items"] = {"type": "string"}
    return {
        "title": "ParquetRow",
        "description": "One row of docvlm's Parquet output: one result, or a page or "
        "document without results",
        "type": "object",
        "properties": properties,
        "required": list(COLUMNS),
        "additionalProperties": False,
    }


def document_rows(document: Document) -> list[dict[str, Any]]:
    """The flat rows of one Document, in page and reading order."""
    document_id = hashlib.sha256(
        f"{document.source}\0{document.sha256 or ''}".encode()
    ).hexdigest()[:32]
    base: dict[str, Any] = dict.fromkeys(COLUMNS)
    base.update(
        schema_version=document.schema_version,
        document_id=document_id,
        source=document.source,
        sha256=document.sha256,
        document_status=document.status,
        document_error=document.error,
        status=document.status,
        error=document.error,
    )
    if not document.pages:
        return [base]
    rows = []
    for page in document.pages:
        page_row = dict(
            base,
            page=page.number,
            page_id=f"{document_id}:{page.number}",
            page_status=page.status,
            page_error=page.error,
            page_width=page.width,
            page_height=page.height,
            page_dpi=page.dpi,
            page_warnings=list(page.warnings),
            page_rotation=page.rotation,
            page_skew=page.skew,
            page_orientation_confidence=page.orientation_confidence,
            page_confidence=page.confidence,
            status=page.status,
            error=page.error,
        )
        if not page.results:
            rows.append(page_row)
        for index, result in enumerate(page.results):
            rows.append(
                dict(
                    page_row,
                    result_index=index,
                    task=result.task,
                    status=result.status,
                    error=result.error,
                    confidence=result.confidence,
                    stop=result.stop,
                    checkpoint=result.checkpoint,
                    prompt=result.prompt,
                    raw=result.raw,
                    box_x0=result.box.x0,
                    box_y0=result.box.y0,
                    box_x1=result.box.x1,
                    box_y1=result.box.y1,
                    text=result.summary()
                    if result.status == "ok" and result.stop != "blank"
                    else "",
                    result_json=result.model_dump_json(),
                )
            )
    return rows


def _part(number: int) -> str:
    return f"part-{number:06d}.parquet"


def _number(path: Path) -> int:
    return int(path.name[5:11])


def _without(table: Any, sources: set[str]) -> Any:
    """``table`` without the rows of ``sources``."""
    if not sources:
        return table
    pa = _pyarrow()
    held = pa.compute.is_in(table["source"], value_set=pa.array(sorted(sources), pa.string()))
    return table.filter(pa.compute.invert(held))


@contextmanager
def _staged(path: Path) -> Iterator[BinaryIO]:
    """A file written as ``path``, complete or not at all: staged under a hidden name,
    fsynced and renamed; when writing fails the staged file is removed at once (a failed
    join would otherwise leave megabytes behind until the next run)."""
    staging = path.with_name(f".{path.name}.tmp")
    try:
        with staging.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _write_part(table: Any, path: Path) -> None:
    """``table`` as the part ``path``, complete or not at all."""
    pa = _pyarrow()
    with _staged(path) as handle:
        pa.parquet.write_table(table, handle, compression="zstd")


class ParquetPartsSink:
    """A folder of Parquet parts; the cursor is the number of committed parts."""

    def __init__(
        self,
        path: Path,
        cursor: str | None = None,
        *,
        rows_per_part: int = 5000,
        seconds_per_part: float = 30.0,
    ) -> None:
        self.path = path
        self._schema = arrow_schema()
        self._rows: list[dict[str, Any]] = []
        self._limits = (rows_per_part, seconds_per_part)
        self._last = time.monotonic()
        path.mkdir(parents=True, exist_ok=True)
        self.parts = 0 if cursor is None else int(cursor)
        for stale in path.glob(".part-*"):
            stale.unlink()
        for part in path.glob("part-*.parquet"):  # written after the last commit
            if _number(part) >= self.parts:
                part.unlink()

    def write(self, document: Document) -> None:
        self._rows.extend(document_rows(document))

    def due(self) -> bool:
        rows, seconds = self._limits
        return len(self._rows) >= rows or time.monotonic() - self._last >= seconds

    def commit(self) -> str:
        if self._rows:
            pa = _pyarrow()
            table = pa.Table.from_pylist(self._rows, schema=self._schema)
            _write_part(table, self.path / _part(self.parts))
            self.parts += 1
            self._rows = []
        self._last = time.monotonic()
        return str(self.parts)

    def compact(self) -> str:
        """Drop the rows of each source from every part but the last that holds it; each
        part is rewritten whole (staged, renamed), so the cursor (the part count) stays."""
        cursor = self.commit()
        pa = _pyarrow()
        parts = sorted(self.path.glob("part-*.parquet"))
        sources = [
            set(pa.parquet.read_table(p, columns=["source"])["source"].to_pylist()) for p in parts
        ]
        later: set[str] = set()
        for part, held in reversed(list(zip(parts, sources, strict=True))):
            stale = held & later
            later |= held
            if stale:
                table = pa.parquet.read_table(part, schema=self._schema)
                _write_part(_without(table, stale), part)
        return cursor

    def close(self) -> None:
        self.commit()

    def abandon(self) -> None:
        self._rows = []

    def __enter__(self) -> ParquetPartsSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_MERGED = b"docvlm.parts"


def _merged_parts(path: Path) -> int:
    if not path.exists():
        return 0
    pa = _pyarrow()
    metadata = pa.parquet.read_schema(path).metadata or {}
    return int(metadata.get(_MERGED, b"0"))


class ParquetFileSink:
    """One Parquet file, joined from committed parts on ``close()``."""

    def __init__(self, path: Path, cursor: str | None = None, **limits: Any) -> None:
        self.path = path
        staging = path.with_name(path.name + ".parts")
        if cursor is None:
            path.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        self._parts = ParquetPartsSink(staging, cursor, **limits)
        merged = _merged_parts(path)
        for part in staging.glob("part-*.parquet"):  # already in the file (a cut join)
            if _number(part) < merged:
                part.unlink()

    def write(self, document: Document) -> None:
        self._parts.write(document)

    def due(self) -> bool:
        return self._parts.due()

    def commit(self) -> str:
        return self._parts.commit()

    def abandon(self) -> None:
        self._parts.abandon()

    def compact(self) -> str:
        return self._parts.compact()  # the join on close drops the file's replaced rows

    def close(self) -> None:
        self.commit()
        parts = sorted(self._parts.path.glob("part-*.parquet"))
        if not parts and self.path.exists():
            shutil.rmtree(self._parts.path, ignore_errors=True)
            return
        pa = _pyarrow()
        schema = arrow_schema().with_metadata(
            {**arrow_schema().metadata, _MERGED: str(self._parts.parts).encode()}
        )
        self._parts.compact()
        replaced = set()  # sources the parts write again (retried or changed files)
        for part in parts:
            replaced |= set(pa.parquet.read_table(part, columns=["source"])["source"].to_pylist())
        with (
            _staged(self.path) as handle,
            pa.parquet.ParquetWriter(handle, schema, compression="zstd") as writer,
        ):
            if self.path.exists():
                for batch in pa.parquet.ParquetFile(self.path).iter_batches():
                    table = pa.Table.from_batches([batch]).cast(schema)
                    writer.write_table(_without(table, replaced))
            for part in parts:
                writer.write_table(pa.parquet.read_table(part, schema=schema))
        shutil.rmtree(self._parts.path, ignore_errors=True)

    def __enter__(self) -> ParquetFileSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
