"""A generated image project for the shard and object-store tests: boxes (some of an unknown class,
reported dropped), polygons, choices, a cancelled annotation now and then, image names shared across
the project."""

import json
import random
from pathlib import Path

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Car"/><Label value="Person"/></RectangleLabels>
  <PolygonLabels name="outline" toName="image"><Label value="Road"/></PolygonLabels>
  <Choices name="weather" toName="image"><Choice value="sunny"/><Choice value="rainy"/></Choices>
</View>
"""


def make_task(task_id: int, rng: random.Random) -> dict:
    width, height = rng.choice([(640, 480), (1280, 720)])
    results = []
    for number in range(rng.randint(0, 3)):
        results.append({"original_width": width, "original_height": height, "image_rotation": 0,
                        "value": {"x": rng.uniform(0, 90), "y": rng.uniform(0, 90), "width": rng.uniform(1, 20),
                                  "height": rng.uniform(1, 20), "rotation": rng.choice([0, 0, 0, 30]),
                                  # "Bus" is not a class of the config: a dropped region, with its reason
                                  "rectanglelabels": [rng.choice(["Car", "Person", "Person", "Bus"])]},
                        "id": f"r{task_id}x{number}", "from_name": "label", "to_name": "image",
                        "type": "rectanglelabels", "origin": "manual"})
    if rng.random() < 0.3:
        results.append({"original_width": width, "original_height": height, "image_rotation": 0,
                        "value": {"points": [[10, 10], [60, 12], [40, 70]], "closed": True, "polygonlabels": ["Road"]},
                        "id": f"p{task_id}", "from_name": "outline", "to_name": "image", "type": "polygonlabels",
                        "origin": "manual"})
    if rng.random() < 0.5:
        results.append({"value": {"choices": [rng.choice(["sunny", "rainy"])]}, "id": f"c{task_id}",
                        "from_name": "weather", "to_name": "image", "type": "choices", "origin": "manual"})
    stamp = f"2025-10-{1 + task_id % 28:02d}T09:00:00.000000Z"
    annotation = {"id": task_id * 10, "completed_by": 1 + task_id % 3, "result": results,
                  "was_cancelled": task_id % 97 == 0, "ground_truth": False, "created_at": stamp,
                  "updated_at": stamp, "lead_time": 1.5, "task": task_id}
    # Some images share a file name across the whole project (and so across shards): one pass names the
    # later tasks' images apart (`__task<id>`), and so must the shards.
    image = f"/data/upload/1/{'shared' if task_id % 450 == 7 else f'img{task_id}'}.jpg"
    return {"id": task_id, "data": {"image": image, "city": rng.choice(["Oslo", "Lima"])},
            "annotations": [annotation], "predictions": [], "created_at": stamp, "updated_at": stamp,
            "inner_id": task_id, "project": 1}


def write_project(folder: Path, tasks: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "label_config.xml").write_text(CONFIG)
    (folder / "export.json").write_text(json.dumps(tasks))
