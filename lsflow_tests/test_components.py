"""lsflow's Component in a user's dg project: listed by dg, several instances side by side, a live server
configured through env templating with the key never written anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from lsflow_tests.dg_project import launch_everything, project_env, run_dg
from lsflow_tests.paths import SAMPLE_MEDIA, SAMPLE_PROJECTS

MODULE = "lsflow_component_user"


def dg_project(root: Path, instances: dict[str, str]) -> Path:
    """A minimal dg project (what `create-dagster project` makes) with one defs.yaml per instance."""
    package = root / "src" / MODULE
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{MODULE}"\nversion = "0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{MODULE}"\n\n[tool.dg.cli]\ntelemetry.enabled = false\n')
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\ndef defs():\n"
        "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n")
    for folder, yaml_text in instances.items():
        (package / "defs" / folder).mkdir()
        (package / "defs" / folder / "defs.yaml").write_text(yaml_text)
    return root


FILES_INSTANCE = f"""type: lsflow.components.LabelStudioDatasets
attributes:
  source: files
  projects_dir: {SAMPLE_PROJECTS}
  media_root: {SAMPLE_MEDIA}
  projects: [1, 2]
  formats: [YOLO, CONLL2003]
"""


def test_dg_lists_the_component(tmp_path):
    result = run_dg(tmp_path, {**os.environ}, "list", "components", "--json")
    assert result.returncode == 0, result.stderr
    assert "lsflow.components.LabelStudioDatasets" in {item["key"] for item in json.loads(result.stdout)["items"]}


def test_two_instances_in_one_project_do_not_collide(tmp_path):
    server = """type: lsflow.components.LabelStudioDatasets
attributes:
  url: "{{ env.LABEL_STUDIO_URL }}"
  project_title_pattern: "^cars "
  formats: [COCO]
  group_name: server_datasets
  automation_running: true
"""
    project = dg_project(tmp_path / "user", {"sample": FILES_INSTANCE, "server": server})
    env = project_env(project)
    checked = run_dg(project, env, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = run_dg(project, env, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout)
    assets = {a["asset_key"]: a for a in defs["assets"]}
    instance_assets = ("label_studio_snapshot", "normalized_tasks", "dataset_shards", "prediction_review",
                       "annotator_agreement")
    assert set(assets) == {f"{name}/{asset}" for name in ("sample", "server") for asset in instance_assets} | {
        "sample/dataset_yolo", "sample/dataset_conll2003", "server/dataset_coco"}
    assert assets["server/dataset_coco"]["group_name"] == "server_datasets"
    assert assets["sample/dataset_yolo"]["group_name"] == "datasets"
    assert {j["name"] for j in defs["jobs"]} >= {"sample_export_project", "server_export_project"}
    assert {s["name"] for s in defs["sensors"]} == {"sample_label_studio_projects", "server_label_studio_projects"}
    assert {s["name"] for s in defs["schedules"]} == {"sample_full_export", "server_full_export"}
    assert {r["name"] for r in defs["resources"]} == {"sample_task_source", "sample_settings", "server_task_source",
                                                     "server_settings"}


def test_a_live_server_through_env_templating_with_the_key_read_at_run_time(label_studio, image_project, tmp_path):
    key_variable = "CARS_LABEL_STUDIO_KEY"
    server = f"""type: lsflow.components.LabelStudioDatasets
attributes:
  url: "{{{{ env.LABEL_STUDIO_URL }}}}"
  api_key_env_var: {key_variable}
  projects: [{image_project.id}]
  formats: [COCO, YOLO]
  output_root: out
"""
    project = dg_project(tmp_path / "user", {"cars": server})
    env = project_env(project, LABEL_STUDIO_URL=label_studio.url, **{key_variable: label_studio.personal_token})
    run = launch_everything(project, env, str(image_project.id))
    datasets = project / "out" / f"project-{image_project.id}" / "datasets"
    assert (datasets / "COCO" / "result.json").is_file() and (datasets / "YOLO" / "data.yaml").is_file()
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey(["cars", "dataset_coco"]), limit=1).records
        assert record.asset_materialization.metadata["regions_written"].value > 0
    # The key is named in the YAML, never written: not in the output, the instance's storage or the datasets.
    token = label_studio.personal_token.encode()
    assert token not in (run.stdout + run.stderr).encode()
    leaked = [p for p in project.rglob("*") if p.is_file() and token in p.read_bytes()]
    assert leaked == []


def test_a_key_written_into_the_yaml_is_refused(tmp_path):
    literal = FILES_INSTANCE + "  api_key: 0123456789abcdef\n"
    project = dg_project(tmp_path / "user", {"sample": literal})
    checked = run_dg(project, project_env(project), "check", "defs")
    assert checked.returncode != 0
    assert "api_key" in checked.stdout + checked.stderr
