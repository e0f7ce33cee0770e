"""Paths of the repository's embedded sample data, shared by tests."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROJECTS = REPO_ROOT / "data" / "sample" / "projects"
SAMPLE_MEDIA = REPO_ROOT / "data" / "sample" / "media"
IMAGE_PROJECT = SAMPLE_PROJECTS / "1"
IMAGE_EXPORT = IMAGE_PROJECT / "export.json"
IMAGE_CONFIG = IMAGE_PROJECT / "label_config.xml"
PEER_CORPUS = REPO_ROOT.parent / "shared" / "peer-corpus" / "label-studio-sdk"
