"""BRUSH_TO_PNG: brush masks as 8-bit grayscale PNGs (layout: see `brush.py`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from lsflow.core.formats.shared.masks import BrushMaskWriter


class BrushToPngWriter(BrushMaskWriter):
    name = "BRUSH_TO_PNG"
    description = "Brush masks as PNG images: one per region, named as Label Studio does, and one per image and label"
    extension = ".png"

    def encode(self, mask: np.ndarray) -> bytes:
        encoded = io.BytesIO()
        Image.fromarray(mask).save(encoded, format="PNG")  # uint8 (height, width): 8-bit grayscale
        return encoded.getvalue()

    @classmethod
    def stored_size(cls, path: Path) -> tuple[int, int]:
        with Image.open(path) as image:
            return image.size
