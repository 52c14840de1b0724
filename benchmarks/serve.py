"""Requests per second of `docvlm serve`: one shared generation stream against one
request at a time.

What it does: builds the service app with a stand-in engine whose `generate` takes a
fixed time per call plus a little per crop (roughly how a GPU behaves at small batch
sizes), sends N requests from N concurrent clients (one-page images, the caption task),
and times it twice in the same process: with N workers sharing the stream, where
concurrent crops are batched together, and with one worker, which answers one request
per engine call. It prints requests/s, engine calls and the ratio.
Requirements: pip install -e ".[server]" httpx
Run: python benchmarks/serve.py [--requests 16] [--call-ms 200] [--crop-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docvlm import Settings  # noqa: E402
from docvlm.engines import Engine, Generation, Request  # noqa: E402
from docvlm.server import service_app  # noqa: E402


class TimedEngine:
    """Answers after ``call`` seconds plus ``crop`` seconds per request (no model)."""

    def __init__(self, call: float, crop: float) -> None:
        self.call, self.crop = call, crop

    @property
    def checkpoint(self) -> str:
        return "timed"

    @property
    def resolution(self) -> int:
        return 448

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        time.sleep(self.call + self.crop * len(requests))
        return [Generation(text="a scanned page") for _ in requests]


def image(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (index * 13 % 255, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


async def measure(workers: int, requests: int, call: float, crop: float) -> tuple[float, int]:
    engine = TimedEngine(call, crop)

    def factory(checkpoint: str, settings: Settings) -> Engine:
        return engine

    app = service_app(
        Settings(device="cpu", render_timeout=None, batch_size=max(requests, 8)),
        checkpoint="timed",
        engine_factory=factory,
        workers=workers,
        queue_limit=requests,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await client.post(
            "/v1/convert", files={"file": ("w.png", image(0))}, data={"tasks": "caption"}
        )
        shared = app.state.converter.engines.loaded["timed"]
        calls_before = shared.calls
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/convert",
                    files={"file": (f"{i}.png", image(i))},
                    data={"tasks": "caption"},
                    timeout=600,
                )
                for i in range(requests)
            )
        )
        elapsed = time.perf_counter() - started
    assert all(a.status_code == 200 for a in answers), [a.status_code for a in answers]
    app.state.converter.close()
    return requests / elapsed, shared.calls - calls_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--call-ms", type=float, default=200.0)
    parser.add_argument("--crop-ms", type=float, default=10.0)
    args = parser.parse_args()
    call, crop = args.call_ms / 1000, args.crop_ms / 1000
    one, one_calls = asyncio.run(measure(1, args.requests, call, crop))
    shared, shared_calls = asyncio.run(measure(args.requests, args.requests, call, crop))
    n = args.requests
    print(
        f"{n} concurrent requests, engine {args.call_ms:.0f} ms/call + {args.crop_ms:.0f} ms/crop"
    )
    print(f"one at a time (1 worker): {one:6.2f} requests/s, {one_calls} engine calls")
    print(f"shared stream ({n} workers): {shared:6.2f} requests/s, {shared_calls} engine calls")
    print(f"ratio: {shared / one:.1f}x")


if __name__ == "__main__":
    main()
