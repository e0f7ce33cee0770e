"""A dataset's files as tests compare them."""

from pathlib import Path

from lsflow.core.pipeline.versions import DESCRIPTION


def dataset_files(directory: Path) -> dict[Path, bytes]:
    """Every file of a dataset by relative path; a version's description of itself (manifest, card: when
    and from which snapshot it was made) is left out, so two builds of the same content compare equal."""
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*")
            if p.is_file() and p.relative_to(directory).parts[0] not in DESCRIPTION}
