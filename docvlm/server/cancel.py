"""Cooperative cancellation of a conversion running in a worker thread.

A Python thread cannot be stopped from outside, so the service asks instead: each
conversion has a ``threading.Event``, set when its client disconnects, its time budget
(``--request-timeout``) runs out, or the server shuts down. The worker thread registers
the event (``watching``) and the conversion loop looks at it between batches of pages
(``_ServiceClient``) and while it waits for the shared engine (``SharedEngine.generate``),
raising ``ConversionCancelled``. The engine call already running finishes first, so a
cancelled conversion stops within one engine batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ConversionCancelled", "cancelled", "check_cancelled", "watching"]

_local = threading.local()


class ConversionCancelled(Exception):
    """The conversion was given up: its client left, its time ran out, or the server is
    stopping."""


@contextmanager
def watching(event: threading.Event) -> Iterator[None]:
    """Make ``event`` the current thread's cancel flag while the block runs."""
    _local.event = event
    try:
        yield
    finally:
        _local.event = None


def cancelled() -> threading.Event | None:
    """The current thread's cancel flag, or None outside a watched conversion."""
    event: threading.Event | None = getattr(_local, "event", None)
    return event


def check_cancelled() -> None:
    """Raise ``ConversionCancelled`` when the current thread's conversion was cancelled."""
    event = cancelled()
    if event is not None and event.is_set():
        raise ConversionCancelled("the conversion was cancelled")
