"""Only regular files are opened: a named pipe (whose first read waits for a writer that
never comes), a socket or a device is a recorded failure naming it, and the batch goes on.
Links to regular files are read as before."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import scribbled

from docvlm import Document, UnsupportedInputError
from docvlm.reading.render import load_pages
from docvlm.reading.sources import expand_sources

ROOT = Path(__file__).resolve().parents[2]
#: A run that reads a pipe never ends; one that refuses it takes seconds (model load).
SECONDS = 120

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")


def _convert(out: Path, *sources: Path, checkpoint: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "docvlm", "convert", *map(str, sources)]
    command += ["-c", str(checkpoint), "--device", "cpu", "--max-new-tokens", "4", "--out"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "DOCVLM_RENDER_TIMEOUT": "none"}
    return subprocess.run(
        [*command, str(out)], capture_output=True, text=True, env=environment, timeout=SECONDS
    )


def _records(out: Path) -> dict[str, Document]:
    lines = out.read_text(encoding="utf-8").splitlines()
    documents = [Document.model_validate_json(line) for line in lines]
    return {Path(d.source).name: d for d in documents}


@pytest.mark.parametrize("named", ["in a folder", "directly"])
def test_convert_refuses_a_named_pipe_and_goes_on(
    tmp_path: Path, tiny_checkpoint: Path, named: str
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    scribbled((200, 160)).save(folder / "a.png")
    pipe = folder / "b.pdf"
    os.mkfifo(pipe)
    os.symlink(folder / "a.png", folder / "c.png")  # a link to a regular file stays allowed
    out = tmp_path / "out.jsonl"
    sources = [folder] if named == "in a folder" else [pipe, folder / "a.png", folder / "c.png"]
    done = _convert(out, *sources, checkpoint=tiny_checkpoint)  # raises if it hangs
    assert done.returncode == 1, done.stderr  # 1: some file failed
    records = _records(out)
    assert sorted(records) == ["a.png", "b.pdf", "c.png"]
    assert records["b.pdf"].status == "failure"
    assert records["b.pdf"].error == "a named pipe, not a regular file"
    assert records["b.pdf"].source == str(pipe)
    for name in ("a.png", "c.png"):
        assert records[name].status == "success" and records[name].pages[0].number == 1
    summary = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")][-1]
    assert (summary["files_done"], summary["files_failed"]) == (2, 1)


def test_sockets_and_devices_are_refused_before_a_read(tmp_path: Path) -> None:
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "s.pdf"))
    try:
        items = {Path(i.name).name: i for i in expand_sources([tmp_path, Path("/dev/zero")])}
    finally:
        listening.close()
    assert items["s.pdf"].source is None and items["zero"].source is None
    assert str(items["s.pdf"].error) == f"{tmp_path / 's.pdf'}: a socket, not a regular file"
    assert str(items["zero"].error) == "/dev/zero: a character device, not a regular file"


def test_a_single_read_refuses_a_pipe(tmp_path: Path) -> None:
    pipe = tmp_path / "scan.pdf"
    os.mkfifo(pipe)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            next(load_pages(pipe))
        except BaseException as error:  # handed to the test's thread
            raised.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked opening the pipe: a writer that closes at once frees it
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("reading a named pipe waited for a writer")
    assert [str(e) for e in raised] == [f"{pipe}: a named pipe, not a regular file"]
    assert isinstance(raised[0], UnsupportedInputError)
