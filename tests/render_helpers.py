"""Helpers the render worker imports in its child process (tests only)."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any

from docvlm.reading.pdf import serve


class _SlowOnSecondPage:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def recv(self) -> Any:
        request = self._connection.recv()
        if request[0] == "render" and request[1] == 1:
            time.sleep(30)  # a page that hangs the renderer
        return request

    def send(self, value: Any) -> None:
        self._connection.send(value)


def hanging_serve(connection: Connection) -> None:
    serve(_SlowOnSecondPage(connection))  # type: ignore[arg-type]
