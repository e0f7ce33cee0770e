"""Media files as the formats see them: a lookup from a task's reference to a local file.

Core never fetches anything: `MediaLookup` is implemented in `lsflow.sources.media` (local copies,
downloads into a cache) and handed in through the export context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PIL import Image, UnidentifiedImageError

from lsflow.core.model.task import ImageSize


class MediaLookup(Protocol):
    def local_path(self, reference: str) -> Path | None:
        """The local file behind a task's media reference, or None when it cannot be had."""


def image_size(path: Path) -> ImageSize | None:
    """Width and height from the image header (Pillow does not decode the pixels)."""
    try:
        with Image.open(path) as image:
            return ImageSize(*image.size)
    except (OSError, UnidentifiedImageError):
        return None
