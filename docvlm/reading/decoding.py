"""What an image decoder says: a short cause for a refused image, and the messages a C
decoder (libtiff) prints on the process's stderr, captured as the page's warnings so that
a JSON log stays JSON."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

from PIL import Image, UnidentifiedImageError

__all__ = ["decoder_messages", "image_error"]


def image_error(error: Exception) -> str:
    """A short cause for an image the decoder refused (no object reprs, no paths)."""
    if isinstance(error, Image.DecompressionBombError):
        return "refused as a decompression bomb (too many pixels)"
    if isinstance(error, UnidentifiedImageError):
        return "cannot identify the image format (damaged or not an image)"
    text = str(error).split(" <", 1)[0]
    return f"cannot decode the image ({text})" if text else "cannot decode the image"


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def decoder_messages(image_format: str | None) -> Iterator[list[str]]:
    """Collect what a C decoder prints on stderr while the block runs (TIFF only).

    libtiff reports problems (``More samples per pixel than can be decoded``) on the
    process's stderr, naming no file; captured, they become the page's warnings instead.
    Only TIFF decoding is wrapped: file descriptor 2 is borrowed for the decode alone.
    """
    messages: list[str] = []
    if image_format != "TIFF":
        yield messages
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield messages
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(4096).decode("utf-8", "replace")
            messages.extend(
                f"decoder: {line.strip()}" for line in text.splitlines() if line.strip()
            )
