"""Every file and folder of a project's output, in one place (under `data/output` by default).

    project-<id>/snapshot/     the latest snapshot: export.json, label_config.xml, snapshot.json
    project-<id>/store/        the normalized store (Parquet) the datasets are built from
    project-<id>/reuse/        what the last dataset build kept of each task's output, for the next
    project-<id>/shards/       a large project's shards: per task-id range, its output and reuse index
    project-<id>/versions/     per format, its immutable versions: versions/<FORMAT>/<version id>/
    project-<id>/datasets/     per format, a link to its newest version: datasets/<FORMAT>/
    project-<id>/review/       the prediction review: review.json, README.md and its pictures
    project-<id>/agreement/    annotator agreement: agreement.json and README.md
    project-<id>/.staging-*    private folders a step builds in before publishing atomically

`lsflow export --path DIR` keeps the same folders under `DIR/.lsflow/` and the formats in `DIR/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lsflow.sources.base import EXPORT_FILE, LABEL_CONFIG_FILE

SNAPSHOT_RECORD_FILE = "snapshot.json"
# `lsflow export --path DIR` keeps the project's snapshot and store here, for incremental re-exports.
EXPORT_STATE_DIR = ".lsflow"


@dataclass(frozen=True, slots=True)
class ProjectLayout:
    root: Path
    project_id: str
    # Where the format folders go, if not beside the snapshot and store (`lsflow export --path`).
    datasets_root: Path | None = None

    @classmethod
    def for_export_path(cls, path: Path, project_id: str) -> ProjectLayout:
        """`lsflow export --path PATH`: the formats in PATH, lsflow's own state in PATH/.lsflow/."""
        return cls(path / EXPORT_STATE_DIR, project_id, datasets_root=path)

    @property
    def project_dir(self) -> Path:
        return self.root / f"project-{self.project_id}"

    @property
    def snapshot_dir(self) -> Path:
        return self.project_dir / "snapshot"

    @property
    def snapshot_export(self) -> Path:
        return self.snapshot_dir / EXPORT_FILE

    @property
    def snapshot_label_config(self) -> Path:
        return self.snapshot_dir / LABEL_CONFIG_FILE

    @property
    def snapshot_record(self) -> Path:
        return self.snapshot_dir / SNAPSHOT_RECORD_FILE

    @property
    def store_dir(self) -> Path:
        return self.project_dir / "store"

    @property
    def reuse_dir(self) -> Path:
        """What the last dataset build kept of each task's output (`lsflow.core.incremental.reuse`)."""
        return self.project_dir / "reuse"

    @property
    def shards_dir(self) -> Path:
        """Each shard's output and reuse index, when the project is built in shards (`lsflow.core.pipeline.shards`)."""
        return self.project_dir / "shards"

    @property
    def datasets_dir(self) -> Path:
        return self.datasets_root or self.project_dir / "datasets"

    def dataset_dir(self, format_name: str) -> Path:
        """The newest dataset of the format: a link to its newest version."""
        return self.datasets_dir / format_name

    @property
    def versions_root(self) -> Path:
        return self.project_dir / "versions"

    def versions_dir(self, format_name: str) -> Path:
        """Every kept version of the format, each in a folder named by its id (`lsflow.project.versions`)."""
        return self.versions_root / format_name

    @property
    def review_dir(self) -> Path:
        """The prediction review of the store's tasks (`lsflow.project.review`)."""
        return self.project_dir / "review"

    @property
    def agreement_dir(self) -> Path:
        """The annotator agreement of the store's tasks (`lsflow.project.agreement`)."""
        return self.project_dir / "agreement"

    @property
    def lock_file(self) -> Path:
        """Held by the run writing the project (`lsflow.project.lock`)."""
        return self.project_dir / ".lock"

    def staging_dir(self, name: str) -> Path:
        """A private folder beside the published one, on the same filesystem so the move is atomic."""
        return self.project_dir / f".staging-{name}"
