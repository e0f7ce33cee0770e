"""remove_tree: shutil.rmtree(ignore_errors=True) listing a folder a batch at a time."""

import os

from lsflow.core.pipeline import publish
from lsflow.core.pipeline.publish import remove_tree


def test_a_tree_larger_than_a_batch_goes_whole_and_links_are_not_followed(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "_REMOVE_BATCH", 3)  # every folder below takes several listings
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not ours")
    tree = tmp_path / "tree"
    for folder in ("labels/train", "labels/val", "images", "empty"):
        (tree / folder).mkdir(parents=True)
    for number in range(10):
        (tree / "labels" / "train" / f"{number}.txt").write_text("0 0.5 0.5 0.1 0.1")
        (tree / "images" / f"{number}.jpg").write_bytes(b"jpeg")
    os.link(tree / "images" / "0.jpg", tree / "labels" / "val" / "linked.jpg")
    (tree / "labels" / "val" / "to_outside").symlink_to(outside)
    (tree / "file_to_outside").symlink_to(outside / "keep.txt")

    remove_tree(tree)

    assert not tree.exists()
    assert (outside / "keep.txt").read_text() == "not ours"


def test_what_cannot_be_removed_stays_and_the_rest_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "_REMOVE_BATCH", 2)
    tree = tmp_path / "tree"
    tree.mkdir()
    for number in range(7):
        (tree / f"{number}.txt").write_text("x")
    stuck = str(tree / "3.txt")
    unlink = os.unlink

    def refusing_unlink(path, *args, **kwargs):
        if os.fspath(path) == stuck:
            raise PermissionError(path)
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refusing_unlink)
    remove_tree(tree)
    assert sorted(os.listdir(tree)) == ["3.txt"]


def test_a_missing_path_or_a_file(tmp_path):
    remove_tree(tmp_path / "absent")
    single = tmp_path / "single.txt"
    single.write_text("x")
    remove_tree(single)
    assert not single.exists()
