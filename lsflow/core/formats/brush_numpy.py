"""BRUSH_TO_NUMPY: brush masks as `.npy` arrays, (height, width) uint8 (layout: see `brush.py`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from lsflow.core.formats.shared.masks import BrushMaskWriter


class BrushToNumpyWriter(BrushMaskWriter):
    name = "BRUSH_TO_NUMPY"
    description = "Brush masks as NumPy arrays: one per region, named as Label Studio does, and one per image and label"
    extension = ".npy"

    def encode(self, mask: np.ndarray) -> bytes:
        encoded = io.BytesIO()
        np.save(encoded, mask)
        return encoded.getvalue()

    @classmethod
    def stored_size(cls, path: Path) -> tuple[int, int]:
        height, width = np.load(path, mmap_mode="r").shape
        return width, height
