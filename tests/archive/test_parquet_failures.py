"""A Parquet join that fails leaves no staged file behind, and the file it would have
replaced stays as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from docvlm.archive.output import open_sink
from docvlm.archive.records import build_document
from docvlm.document import Document
from docvlm.results import Page, TextResult
from parsers import Box

pq = pytest.importorskip("pyarrow.parquet")

FRAME = Box(x0=0, y0=0, x1=448, y1=448)


def _document(name: str) -> Document:
    # text that zstd cannot shrink much, so the staged file grows as the real ones do
    words = " ".join(hashlib.sha256(f"{name}{i}".encode()).hexdigest() for i in range(400))
    result = TextResult.from_output(
        words, FRAME, source=name, page=1, box=FRAME, checkpoint="c", prompt="p"
    )
    page = Page(number=1, width=448, height=448, status="ok", results=(result,))
    return build_document(name, [page], sha256=hashlib.sha256(name.encode()).hexdigest())


def _damage_last_row_group(path: Path) -> None:
    """Garbage over the data of the file's last row group; its footer stays readable."""
    metadata = pq.ParquetFile(path).metadata
    column = metadata.row_group(metadata.num_row_groups - 1).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    with path.open("r+b") as handle:
        handle.seek(start)
        handle.write(b"\xff" * column.total_compressed_size)


def test_a_failed_join_removes_its_staged_file(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    for batch in range(3):  # three runs, joined: more than one row group
        sink = open_sink(path, cursor=None if batch == 0 else "0")
        for number in range(20):
            sink.write(_document(f"{batch}-{number}.pdf"))
        sink.close()
    assert pq.ParquetFile(path).metadata.num_row_groups >= 2
    _damage_last_row_group(path)
    damaged = path.read_bytes()
    sink = open_sink(path, cursor="0")
    sink.write(_document("new.pdf"))
    with pytest.raises(OSError):  # pyarrow's ArrowInvalid/IOError derive from it or ValueError
        sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "out.parquet.parts"]
    assert path.read_bytes() == damaged  # not replaced by a half-joined file
