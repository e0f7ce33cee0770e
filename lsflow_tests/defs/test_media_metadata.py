"""Task media in a Dagster run: downloaded from an allowed loopback host, and counted in the metadata."""

import io
import json

import dagster as dg
from PIL import Image

from lsflow.defs.assets import datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource
from lsflow_tests.paths import IMAGE_CONFIG
from lsflow_tests.sources.media_http_server import MediaHttpServer


def test_dataset_metadata_counts_downloaded_missing_and_refused_media(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, format="PNG")
    with MediaHttpServer() as server, dg.instance_for_test() as instance:
        server.serve_file("/a.png", buffer.getvalue(), etag='"a"')
        project = tmp_path / "projects" / "9"
        project.mkdir(parents=True)
        (project / "label_config.xml").write_text(IMAGE_CONFIG.read_text())
        (project / "export.json").write_text(json.dumps([
            {"id": 1, "data": {"image": server.url("/a.png")}, "annotations": []},
            {"id": 2, "data": {"image": server.url("/gone.png")}, "annotations": []},
            {"id": 3, "data": {"image": "file:///etc/passwd"}, "annotations": []},
        ]))
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, ["9"])
        result = dg.materialize(
            [label_studio_snapshot, normalized_tasks, datasets], partition_key="9", instance=instance,
            selection=["label_studio_snapshot", "normalized_tasks", "dataset_coco"],
            resources={
                "task_source": ExportFileSourceResource(projects_dir=str(tmp_path / "projects")),
                "settings": DatasetSettings(output_root=str(tmp_path / "out"), media_cache_dir=str(tmp_path / "cache"),
                                            media_allowed_hosts=[f"127.0.0.1:{server.port}"]),
            },
        )
    assert result.success
    (coco,) = [m for m in result.asset_materializations_for_node("datasets")]
    counts = {key: coco.metadata[f"media_{key}"].value for key in ("resolved", "downloaded", "cached", "missing", "refused")}
    assert counts == {"resolved": 1, "downloaded": 1, "cached": 0, "missing": 1, "refused": 1}
    problems = coco.metadata["media_problems"].value
    assert "HTTP 404" in problems and "'file:' references are not read" in problems
    images = json.loads((tmp_path / "out" / "project-9" / "datasets" / "COCO" / "result.json").read_text())["images"]
    assert [(i["id"], i["width"], i["height"]) for i in images] == [(1, 40, 30)]
