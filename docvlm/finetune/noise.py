"""Scan noise for synthetic training images, shared by every synthetic drawing."""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageFilter

__all__ = ["add_scan_noise"]


def add_scan_noise(image: Image.Image, rng: random.Random, strength: float = 1.0) -> Image.Image:
    """What a scan or a copy does to a drawing: blur, speckles, a 1-bit threshold."""
    import numpy as np

    out = image.convert("L")
    if rng.random() < 0.5 * strength:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    pixels: Any = np.asarray(out, dtype=np.float32)
    noise = np.random.default_rng(rng.getrandbits(32))
    if rng.random() < 0.5 * strength:
        pixels = pixels + noise.normal(0.0, rng.uniform(2.0, 18.0), pixels.shape)
    if rng.random() < 0.4 * strength:
        specks = noise.random(pixels.shape) < rng.uniform(0.0005, 0.004)
        pixels[specks] = 255.0 - pixels[specks]
    if rng.random() < 0.3 * strength:
        pixels = np.where(pixels > rng.uniform(110, 200), 255.0, 0.0)  # a 1-bit scan
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
