"""Task media (images, audio) on the local disk: resolving Label Studio references to files.

`/data/upload/<project>/<file>` resolves under a local copy of Label Studio's media folder (the one
holding `upload/`), `--media-root`; plain paths resolve as they are. Files outside the media root
are refused, so a crafted task cannot make lsflow read arbitrary files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

UPLOAD_PREFIX = "/data/upload/"


class MediaRefused(ValueError):
    """A media reference that points outside the allowed places."""


class LocalMedia:
    def __init__(self, media_root: Path | None):
        self.media_root = Path(media_root).resolve() if media_root else None

    def local_path(self, reference: str) -> Path | None:
        """The file behind a task's media reference, or None when it is not on this disk."""
        parsed = urlparse(reference)
        if parsed.scheme in ("http", "https", "s3", "gs", "azure-blob"):
            return None
        path = unquote(parsed.path)
        if path.startswith(UPLOAD_PREFIX):
            if self.media_root is None:
                return None
            candidate = (self.media_root / "upload" / path[len(UPLOAD_PREFIX):]).resolve()
            if not candidate.is_relative_to(self.media_root):
                raise MediaRefused(f"'{reference}' leaves the media root {self.media_root}")
            return candidate if candidate.is_file() else None
        candidate = Path(path)
        return candidate if candidate.is_file() else None
