"""The pieces that read conversion outputs back as Documents (``Output.records``, for
``docvlm review`` and the viewer):

- a JSON Lines file (or part): one Document per line;
- an output folder: one ``NAME/document.json`` per document (``document_files``);
- Parquet (a file, or a folder of parts): rows grouped back into Documents from their
  ``result_json`` (``read_parquet``).

A record that does not load is an ``OutputError`` naming the file (and line).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from docvlm.document import Document
from docvlm.errors import MissingDependencyError
from docvlm.reading.assemble import document_tables
from docvlm.results import Page, Result

__all__ = [
    "JOB_FILE",
    "OutputError",
    "document_files",
    "load_document",
    "looks_like_jsonl",
    "part_files",
    "read_parquet",
]

#: The Ray runner's mark in its folder of parts: the job key its parts were written under.
JOB_FILE = "_job.json"


class OutputError(ValueError):
    """The output cannot be read as Documents; names the file and line."""


def looks_like_jsonl(path: Path) -> bool:
    """Whether ``path`` starts like a JSON Lines file of records (or is empty)."""
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
    return head.startswith(b"{") or not head


def load_document(data: bytes, where: str) -> Document:
    """One record as a Document; ``OutputError`` naming ``where`` when it is not one."""
    try:
        return Document.model_validate_json(data)
    except ValueError as error:
        first = str(error).splitlines()[0]
        raise OutputError(f"{where}: not a Document ({first})") from error


_RESULT = TypeAdapter(Result)


def part_files(folder: Path, pattern: str) -> list[Path]:
    """The parts in ``folder`` named by ``pattern``, in write order.

    The local runner numbers its parts (``part-000000``): by name. The Ray runner (its
    ``JOB_FILE`` marks the folder) names a part by a digest of what it holds, so that a
    retried write task replaces its own part; no counter survives that without a
    coordinator, so its parts go by modification time (the rename or move that put the
    part in place; ``Parts.parts`` reads the same from pyarrow's ``FileInfo.mtime``, on a
    store too), then name. Within one job a source is in one part, so a tie (a store's
    one-second clock) orders only parts of different sources. The local runner's parts
    are not ordered by time: compaction rewrites earlier parts, which keep their number.
    """
    files = [f for f in folder.glob(pattern) if f.is_file()]
    if (folder / JOB_FILE).is_file():
        return sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name))
    return sorted(files)


def read_parquet(path: Path) -> Iterator[Document]:
    """Documents rebuilt from docvlm's Parquet rows (a file, or a folder of parts), in
    the order they were written."""
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise MissingDependencyError(
            "reading Parquet needs pyarrow: pip install 'docvlm[parquet]'"
        ) from error
    files = part_files(path, "*.parquet") if path.is_dir() else [path]
    documents: dict[str, dict[str, Any]] = {}
    for file in files:
        try:
            rows = pq.read_table(file).to_pylist()
        except (OSError, ValueError) as error:
            raise OutputError(f"{file}: cannot read it as Parquet ({error})") from error
        for row in rows:
            try:
                key = row["document_id"]
                document = documents.setdefault(
                    key,
                    {
                        "source": row["source"],
                        "sha256": row["sha256"],
                        "status": row["document_status"],
                        "error": row["document_error"],
                        "pages": {},
                    },
                )
                if row["page"] is None:
                    continue
                page = document["pages"].setdefault(
                    row["page"],
                    {
                        "number": row["page"],
                        "width": row["page_width"] or 0,
                        "height": row["page_height"] or 0,
                        "dpi": row.get("page_dpi"),
                        "status": row["page_status"],
                        "error": row["page_error"],
                        "warnings": tuple(row.get("page_warnings") or ()),
                        "results": [],
                        # absent from files written before orientation was recorded
                        "rotation": row.get("page_rotation") or 0,
                        "skew": row.get("page_skew") or 0.0,
                        "orientation_confidence": row.get("page_orientation_confidence"),
                    },
                )
                if row["result_json"]:
                    page["results"].append(_RESULT.validate_json(row["result_json"]))
            except (KeyError, ValueError) as error:
                raise OutputError(f"{file}: not docvlm's Parquet rows ({error})") from error
    for fields in documents.values():
        pages = tuple(Page(**page) for _, page in sorted(fields.pop("pages").items()))
        yield Document(pages=pages, tables=document_tables(list(pages)), **fields)


def document_files(folder: Path) -> list[Path]:
    """Each document's ``document.json``; hidden folders (a run's ``.tmp-NAME`` staging,
    half written) are not records."""
    return sorted(f for f in folder.glob("*/document.json") if not f.parent.name.startswith("."))
