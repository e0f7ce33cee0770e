"""The training step: a classifier of the labelled boxes, trained on a Label Studio dataset version.

It reads the newest `YOLO_WITH_IMAGES` version of every project (the images and the YOLO rows a
detector would be trained on), crops each box, and fits a scikit-learn logistic regression on the
crops' pixels. It records the version it read, so from this materialization a user reaches the
exact dataset (`lsflow versions lineage VERSION --path <project folder>` names its annotations).
"""

import pickle
import time
from pathlib import Path

import dagster as dg
import numpy as np
import yaml
from PIL import Image
from sklearn.linear_model import LogisticRegression

DATASET = dg.AssetKey(["label_studio", "dataset_yolo_with_images"])
PROJECT_ROOT = Path(__file__).resolve().parents[3]
CROP = 24  # pixels a side: enough for colour and shape, small enough to train in a second


def _dataset_versions(instance: dg.DagsterInstance) -> dict[str, Path]:
    """The newest materialized version of the dataset, per project partition: its immutable path."""
    newest: dict[str, Path] = {}
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=DATASET), limit=1000).records
    for record in records:  # newest first
        materialization = record.asset_materialization
        if materialization and materialization.partition not in newest:
            newest[str(materialization.partition)] = Path(str(materialization.metadata["version_path"].value))
    return newest


def _crops(version: Path, split: str, names: list[str]) -> tuple[list[np.ndarray], list[str]]:
    features, labels = [], []
    for label_file in sorted((version / "labels" / split).glob("*.txt")):
        images = [p for p in (version / "images" / split).glob(label_file.stem + ".*")]
        rows = [line.split() for line in label_file.read_text().splitlines() if line.strip()]
        if not images or not rows:
            continue
        with Image.open(images[0]) as opened:
            image = opened.convert("RGB")
        for class_id, cx, cy, w, h in ((int(r[0]), *map(float, r[1:5])) for r in rows):
            box = ((cx - w / 2) * image.width, (cy - h / 2) * image.height,
                   (cx + w / 2) * image.width, (cy + h / 2) * image.height)
            crop = image.crop(tuple(round(v) for v in box)).resize((CROP, CROP))
            for variant in (crop, crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)):  # mirrored boxes: same class
                features.append(np.asarray(variant, dtype=np.float32).ravel() / 255.0)
                labels.append(names[class_id])
    return features, labels


@dg.asset(
    deps=[DATASET],
    kinds={"scikitlearn"},
    group_name="training",
    description="A logistic-regression classifier of the labelled boxes' crops, trained on the newest "
    "YOLO_WITH_IMAGES dataset version of each Label Studio project; records the versions it read.",
)
def crop_classifier(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    versions = _dataset_versions(context.instance)
    if not versions:
        raise dg.Failure(f"no version of {DATASET.to_user_string()} is materialized yet")
    started = time.perf_counter()
    train_x: list[np.ndarray] = []
    train_y: list[str] = []
    held_x: list[np.ndarray] = []
    held_y: list[str] = []
    for version in versions.values():
        names = list(yaml.safe_load((version / "data.yaml").read_text())["names"].values())
        for split in ("train", "val", "test"):
            x, y = _crops(version, split, names)
            (train_x if split == "train" else held_x).extend(x)
            (train_y if split == "train" else held_y).extend(y)
    if len(set(train_y)) < 2:
        raise dg.Failure(f"the training split holds {len(set(train_y))} class(es); a classifier needs two")
    model = LogisticRegression(max_iter=2000, random_state=0).fit(np.stack(train_x), train_y)
    seconds = time.perf_counter() - started
    out = PROJECT_ROOT / "data" / "models"
    out.mkdir(parents=True, exist_ok=True)
    model_file = out / "crop_classifier.pkl"
    model_file.write_bytes(pickle.dumps({"model": model, "dataset_versions": {p: v.name for p, v in versions.items()}}))
    return dg.MaterializeResult(metadata={
        # The lineage: project → the immutable dataset version this model was trained on.
        "dataset_versions": dg.MetadataValue.json({project: path.name for project, path in versions.items()}),
        "dataset_paths": dg.MetadataValue.json({project: str(path) for project, path in versions.items()}),
        "classes": dg.MetadataValue.json(sorted(set(train_y))),
        "train_crops": len(train_y),
        "held_out_crops": len(held_y),
        "train_accuracy": float(model.score(np.stack(train_x), train_y)),
        "held_out_accuracy": float(model.score(np.stack(held_x), held_y)) if held_y else float("nan"),
        "training_seconds": round(seconds, 3),
        "model": dg.MetadataValue.path(str(model_file)),
    })
