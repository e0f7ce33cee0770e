"""Where a project's files live under the output root (`data/output` by default)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProjectLayout:
    root: Path
    project_id: str
    # Where the format folders go, if not beside the snapshot and store (`lsflow export --path`).
    datasets_root: Path | None = None

    @property
    def project_dir(self) -> Path:
        return self.root / f"project-{self.project_id}"

    @property
    def snapshot_dir(self) -> Path:
        return self.project_dir / "snapshot"

    @property
    def store_dir(self) -> Path:
        return self.project_dir / "store"

    @property
    def reuse_dir(self) -> Path:
        """What the last dataset build kept of each task's output, for the next one (`lsflow.core.incremental.reuse`)."""
        return self.project_dir / "reuse"

    @property
    def datasets_dir(self) -> Path:
        return self.datasets_root or self.project_dir / "datasets"

    def staging_dir(self, name: str) -> Path:
        """A private folder beside the published one, on the same filesystem so the move is atomic."""
        return self.project_dir / f".staging-{name}"


def directory_digest(directory: Path) -> str:
    """A digest of every file's relative path and bytes: equal exactly when the contents are."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
