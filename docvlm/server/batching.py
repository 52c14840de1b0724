"""One generation stream shared by every request the server is answering.

Each conversion runs in its own thread with its own ``DocVLM`` client, but all of them get
the same ``SharedEngine`` per checkpoint. Its ``generate`` only queues the crops; a single
thread takes whatever crops are waiting, from every request, and hands them to the loaded
engine in one call. While the engine is busy the queue fills, so the busier the service,
the larger its batches: concurrent requests are read together.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from docvlm.engines import Engine, EngineFactory, Generation, Request
from docvlm.server.cancel import ConversionCancelled, cancelled
from docvlm.settings import Settings

__all__ = ["SharedEngine", "SharedEngines"]


@dataclass(eq=False)
class _Ticket:
    """The crops of one ``generate`` call, and where their answers go."""

    results: list[Generation | None]
    remaining: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class SharedEngine:
    """An ``Engine`` that many threads call at once; their requests are batched together.

    ``max_batch`` bounds the crops given to the wrapped engine in one call; ``window`` is
    how long (seconds) the stream waits after the first crop for others to join it.
    ``calls`` counts the wrapped engine's calls, ``crops`` the crops it read and
    ``received`` the crops queued so far.
    """

    def __init__(self, engine: Engine, *, max_batch: int, window: float = 0.005) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine = engine
        self.max_batch = max_batch
        self.window = window
        self.calls = 0
        self.crops = 0
        self.received = 0
        self._waiting: deque[tuple[_Ticket, int, Request]] = deque()
        self._taken: list[tuple[_Ticket, int, Request]] = []  # the batch in the engine
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._stream, name="docvlm-generate", daemon=True)
        self._thread.start()

    @property
    def checkpoint(self) -> str:
        return self.engine.checkpoint

    @property
    def resolution(self) -> int:
        return self.engine.resolution

    @property
    def pending(self) -> int:
        """Crops queued and not yet given to the engine."""
        with self._ready:
            return len(self._waiting)

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Queue ``requests`` into the shared stream and wait for their answers."""
        if not requests:
            return []
        flag = cancelled()
        ticket = _Ticket(results=[None] * len(requests), remaining=len(requests))
        with self._ready:
            if self._closed:
                raise RuntimeError("the shared engine is closed")
            if flag is not None and flag.is_set():
                raise ConversionCancelled("the conversion was cancelled")
            self._waiting.extend((ticket, i, r) for i, r in enumerate(requests))
            self.received += len(requests)
            self._ready.notify()
        while not ticket.done.wait(0.05 if flag is not None else None):
            if flag is not None and flag.is_set() and self._withdraw(ticket):
                raise ConversionCancelled("the conversion was cancelled")
        if ticket.error is not None:
            raise ticket.error
        return [g for g in ticket.results if g is not None]

    def _withdraw(self, ticket: _Ticket) -> bool:
        """Take ``ticket``'s crops out of the queue; False when one is already in the
        engine (its batch finishes first)."""
        with self._ready:
            if any(t is ticket for t, _, _ in self._taken):
                return False
            self._waiting = deque(item for item in self._waiting if item[0] is not ticket)
            return True

    def close(self) -> None:
        """Stop the stream; calls still waiting fail."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=10)

    def _take(self) -> list[tuple[_Ticket, int, Request]] | None:
        with self._ready:
            while not self._waiting and not self._closed:
                self._ready.wait()
            if self._closed:
                failed = RuntimeError("the shared engine was closed")
                for ticket, _, _ in self._waiting:
                    ticket.error = failed
                    ticket.done.set()
                self._waiting.clear()
                return None
            if self.window > 0 and len(self._waiting) < self.max_batch:
                self._ready.wait(self.window)  # let concurrent requests join this batch
            count = min(self.max_batch, len(self._waiting))
            self._taken = [self._waiting.popleft() for _ in range(count)]
            return self._taken

    def _stream(self) -> None:
        while (batch := self._take()) is not None:
            try:
                answers = self.engine.generate([request for _, _, request in batch])
                if len(answers) != len(batch):
                    raise RuntimeError(
                        f"the engine answered {len(answers)} of {len(batch)} requests"
                    )
            except BaseException as error:  # handed to the waiting callers, who raise it
                with self._ready:
                    self._taken = []
                for ticket, _, _ in batch:
                    ticket.error = error
                    ticket.done.set()
                continue
            self.calls += 1
            self.crops += len(batch)
            with self._ready:
                self._taken = []
            for (ticket, index, _), answer in zip(batch, answers, strict=True):
                ticket.results[index] = answer
                ticket.remaining -= 1
                if ticket.remaining == 0:
                    ticket.done.set()


class SharedEngines:
    """An engine factory for many ``DocVLM`` clients: one ``SharedEngine`` per checkpoint,
    loaded once (by ``factory``) however many clients ask for it."""

    def __init__(self, factory: EngineFactory, *, max_batch: int, window: float = 0.005) -> None:
        self._factory = factory
        self._max_batch = max_batch
        self._window = window
        self._lock = threading.Lock()
        self.loaded: dict[str, SharedEngine] = {}

    def __call__(self, checkpoint: str, settings: Settings) -> Engine:
        with self._lock:
            if checkpoint not in self.loaded:
                engine = self._factory(checkpoint, settings)
                self.loaded[checkpoint] = SharedEngine(
                    engine, max_batch=self._max_batch, window=self._window
                )
            return self.loaded[checkpoint]

    def close(self) -> None:
        with self._lock:
            for engine in self.loaded.values():
                engine.close()
            self.loaded.clear()
