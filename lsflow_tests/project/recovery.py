"""What the crash, disk-full and concurrency tests share: a scaled-up recorded project whose state moves
on (edits, deletions, additions), the pipeline of one run, and the checks that a project's output is
whole — its store readable, every version's files those its manifest names, nothing left behind."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from lsflow.core.incremental.store import TABLES, read_manifest
from lsflow.core.pipeline.versions import DESCRIPTION, read_file_digests, version_id
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.project.versions import list_versions
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.media import MediaResolver
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.paths import IMAGE_PROJECT, SAMPLE_MEDIA

# Formats with per-task files (reused, hard-linked), aggregates rewritten whole, and media copies.
FORMATS = ["COCO", "CSV", "YOLO", "YOLO_WITH_IMAGES"]
PROJECT_ID = "1"
# Names only a step of a run in progress holds; after a finished run there are none.
TEMPORARY_PREFIXES = (".staging-", ".retired-", ".removing-", ".pins.json.")
# Store manifest fields that say what the store holds (the others: which snapshot, when, how).
STORE_CONTENT = ("store_version", "task_count", "annotation_count", "prediction_count", "region_count",
                 "max_updated_at", "content_digest")


@dataclass
class Project:
    """A recorded project (`projects/1/export.json`) whose tasks change between runs like a server's do."""

    projects_dir: Path
    rng: random.Random
    sample: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    clock: int = 0  # minutes after the first state; every change is newer than the last
    next_id: int = 0

    @classmethod
    def create(cls, folder: Path, tasks: int, seed: int) -> Project:
        projects_dir = folder / "projects"
        shutil.copytree(IMAGE_PROJECT, projects_dir / PROJECT_ID)
        project = cls(projects_dir, random.Random(seed), json.loads((IMAGE_PROJECT / "export.json").read_text()),
                      next_id=1000)
        project.tasks = [project._new_task("2025-12-01T00:00:00.000000Z") for _ in range(tasks)]
        project.save()
        return project

    @property
    def folder(self) -> Path:
        return self.projects_dir / PROJECT_ID

    def save(self) -> None:
        (self.folder / "export.json").write_text(json.dumps(self.tasks))

    def _now(self) -> str:
        self.clock += 1
        return f"2026-01-{1 + self.clock // 1440:02d}T{self.clock // 60 % 24:02d}:{self.clock % 60:02d}:00.000000Z"

    def _new_task(self, updated_at: str) -> dict:
        """A sample task under a new id (its annotations too), its boxes moved a little; two in three
        name an image the media folder does not hold (reported missing, not raised)."""
        task_id, self.next_id = self.next_id, self.next_id + 1
        task = copy.deepcopy(self.sample[task_id % len(self.sample)])
        task["id"] = task["inner_id"] = task_id
        if task_id % 3:
            folder, _, name = task["data"]["image"].rpartition("/")
            task["data"]["image"] = f"{folder}/{task_id:05d}{name[8:]}"
        for number, annotation in enumerate(task["annotations"] + task.get("predictions", [])):
            annotation["id"] = task_id * 10 + number
            annotation["task"] = task_id
        self._move_boxes(task)
        task["updated_at"] = updated_at
        return task

    def _move_boxes(self, task: dict) -> None:
        for annotation in task["annotations"]:
            for result in annotation["result"]:
                if "x" in result.get("value", {}):
                    result["value"]["x"] = round(min(result["value"]["x"] + self.rng.random(), 60.0), 4)

    def change(self, kind: str) -> str:
        """Move the project on: `edit` a few tasks, `delete` a few, `add` a few, or edit `most` (a build
        that rewrites nearly every task, with forked workers); the same for every kind of run."""
        now = self._now()
        if kind in ("edit", "most"):
            count = len(self.tasks) * 9 // 10 if kind == "most" else self.rng.randint(1, 6)
            for task in self.rng.sample(self.tasks, count):
                self._move_boxes(task)
                task["data"]["camera"] = f"cam-{self.clock}"
                task["updated_at"] = now
                for annotation in task["annotations"]:
                    annotation["updated_at"] = now
        elif kind == "delete":
            gone = {task["id"] for task in self.rng.sample(self.tasks, self.rng.randint(1, 4))}
            self.tasks = [task for task in self.tasks if task["id"] not in gone]
        elif kind == "add":
            self.tasks += [self._new_task(now) for _ in range(self.rng.randint(1, 5))]
        else:
            raise ValueError(kind)
        self.save()
        return kind


def media_resolver(cache: Path) -> MediaResolver:
    return MediaResolver(SAMPLE_MEDIA, cache_dir=cache)


def run_pipeline(projects_dir: Path, root: Path, media_cache: Path, workers: int = 1, keep_versions: int = 2,
                 formats: list[str] | None = None, full: bool = False) -> None:
    """One run as `lsflow export` and the Dagster assets make it: snapshot, store, datasets."""
    layout = ProjectLayout(root, PROJECT_ID)
    take_project_snapshot(ExportFileSource(projects_dir), layout, full=full)
    update_store(layout)
    with media_resolver(media_cache) as media:
        build_datasets(layout, formats or FORMATS, media, DatasetOptions(workers=workers, keep_versions=keep_versions))


def read_store(layout: ProjectLayout) -> tuple[dict, dict]:
    """The store's tables and the manifest's content fields; raises if any of them cannot be read."""
    tables = {name: pq.read_table(layout.store_dir / f"{name}.parquet") for name in TABLES}
    manifest = read_manifest(layout.store_dir)
    return tables, {name: manifest[name] for name in STORE_CONTENT}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_versions(layout: ProjectLayout, formats: list[str], keep: int | None = None) -> dict[str, str]:
    """What `lsflow versions list` promises: the link resolves to a kept version, and every version holds
    exactly the files its `lsflow_version_files.parquet` names, with those sha256s (its id theirs). The
    current version of each format."""
    current = {}
    for name in formats:
        link = layout.dataset_dir(name)
        assert link.is_symlink(), f"{name}: {link} is not a link"
        target = link.resolve()
        assert target.is_dir() and target.parent == layout.versions_dir(name).resolve(), f"{name}: {link} → {target}"
        versions = list_versions(layout, name)
        assert [v.version for v in versions if v.current] == [target.name], name
        if keep is not None:
            assert len(versions) <= keep, f"{name}: {len(versions)} versions kept, {keep} wanted"
        for folder in layout.versions_dir(name).iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            assert folder.name in {v.version for v in versions}, f"{name}: {folder.name} has no manifest"
            digests = read_file_digests(folder)
            files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
                     if p.is_file() and p.relative_to(folder).parts[0] not in DESCRIPTION}
            assert sorted(files) == sorted(digests), f"{name} {folder.name}: files differ from its manifest"
            for relative, path in files.items():
                assert sha256(path) == digests[relative].sha256, f"{name} {folder.name}: {relative} changed"
            assert version_id(digests) == folder.name, f"{name} {folder.name}: id is not its content's"
        current[name] = target.name
    return current


def leftovers(root: Path) -> list[Path]:
    """Temporary names of a step in progress. `reuse/.trash` is excluded: what the last build replaced
    waits there by design, and the next build empties it."""
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root).parts
        if ".trash" in relative[:-1]:
            continue
        name = path.name
        if name.startswith(TEMPORARY_PREFIXES) or ".link-" in name or name.endswith(".link"):
            found.append(path)
    return found


def assert_same_output(layout: ProjectLayout, reference: ProjectLayout, formats: list[str]) -> None:
    """The datasets file for file, the store's tables row for row and what its manifest says it holds."""
    for name in formats:
        ours, theirs = dataset_files(layout.dataset_dir(name).resolve()), \
            dataset_files(reference.dataset_dir(name).resolve())
        assert sorted(ours) == sorted(theirs), f"{name}: other files"
        different = [str(path) for path in ours if ours[path] != theirs[path]]
        assert not different, f"{name}: files differ: {different[:5]}"
    (tables, manifest), (expected_tables, expected_manifest) = read_store(layout), read_store(reference)
    assert manifest == expected_manifest
    for name in TABLES:
        assert tables[name].equals(expected_tables[name]), f"store table {name} differs"
