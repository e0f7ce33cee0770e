"""The live source against a real Label Studio 1.23.2: both kinds of token, what a snapshot holds,
changed-task snapshots, and the messages for the failures a real server can show."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from lsflow.sources.base import EXPORT_FILE, LABEL_CONFIG_FILE
from lsflow.sources.label_studio import LabelStudioError, LabelStudioSource, Timing
from lsflow_tests.label_studio_server import free_port
from lsflow_tests.live_projects import TEXT_CONFIG
from lsflow_tests.paths import IMAGE_CONFIG


def token(label_studio, kind: str) -> str:
    return label_studio.legacy_token if kind == "legacy" else label_studio.personal_token


@pytest.mark.parametrize("kind", ["legacy", "personal"])
def test_snapshot_holds_every_task_annotation_and_prediction(label_studio, image_project, tmp_path, kind):
    snapshot = LabelStudioSource(label_studio.url, token(label_studio, kind)).take_snapshot(
        str(image_project.id), tmp_path)
    raw = (tmp_path / EXPORT_FILE).read_bytes()
    tasks = orjson.loads(raw)
    assert sorted(t["id"] for t in tasks) == sorted(image_project.task_ids)
    annotations = [a for t in tasks for a in t["annotations"]]
    assert sum(not a["was_cancelled"] for a in annotations) == image_project.annotations
    assert sum(a["was_cancelled"] for a in annotations) == image_project.cancelled  # kept, to be counted
    assert sum(a["ground_truth"] for a in annotations) == 1
    predictions = [p for t in tasks for p in t["predictions"]]
    assert len(predictions) == image_project.predictions
    assert all(isinstance(p, dict) and p["result"] and p["model_version"] == "detector-1" for p in predictions)
    assert snapshot.md5 == hashlib.md5(raw).hexdigest()
    assert snapshot.snapshot_id.isdigit()
    assert snapshot.label_config == IMAGE_CONFIG.read_text().strip() == (tmp_path / LABEL_CONFIG_FILE).read_text()
    assert snapshot.source == f"label_studio:{label_studio.url}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [EXPORT_FILE, LABEL_CONFIG_FILE]


def test_projects_report_their_task_count_and_a_change_marker_that_moves(label_studio):
    pid = label_studio.create_project("lsflow change marker", TEXT_CONFIG)
    task_ids = label_studio.import_tasks(pid, [{"text": "one"}, {"text": "two"}])
    source = LabelStudioSource(label_studio.url, label_studio.personal_token)
    before = next(p for p in source.list_projects() if p.project_id == str(pid))
    assert (before.title, before.task_count) == ("lsflow change marker", 2)
    label_studio.annotate(task_ids[0], [])
    after = next(p for p in source.list_projects() if p.project_id == str(pid))
    assert after.changed_at > before.changed_at


def test_deleted_tasks_are_found_by_counting_id_ranges(label_studio, monkeypatch):
    """Scattered and consecutive deletions among more tasks than one range is listed whole."""
    import lsflow.core.incremental.changes as incremental

    monkeypatch.setattr(incremental, "LIST_BELOW", 4)  # 40 tasks then need halving, counting and listing
    pid = label_studio.create_project("lsflow deletions", TEXT_CONFIG)
    task_ids = label_studio.import_tasks(pid, [{"text": f"task {n}"} for n in range(40)])
    source = LabelStudioSource(label_studio.url, label_studio.personal_token)
    assert source.deleted_task_ids(str(pid), task_ids) == set()
    gone = {task_ids[3], task_ids[17], task_ids[18], task_ids[19], task_ids[39]}
    for task_id in gone:
        label_studio.client.tasks.delete(id=task_id)
    assert source.deleted_task_ids(str(pid), task_ids) == gone
    # Tasks made since do not hide a deletion. On SQLite the next task takes the id of the newest task
    # if that one was deleted: that id exists again (the next snapshot holds the new task, which
    # replaces the old one as any changed task does), so it is no longer a deletion.
    (newer,) = label_studio.import_tasks(pid, [{"text": "newer"}])
    assert source.deleted_task_ids(str(pid), task_ids) == gone - {newer}


def _server_time(text: str) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_changed_since_snapshot_holds_only_the_changed_tasks(label_studio, tmp_path):
    pid = label_studio.create_project("lsflow changed tasks", TEXT_CONFIG)
    task_ids = label_studio.import_tasks(pid, [{"text": f"task {n}"} for n in range(4)])
    source = LabelStudioSource(label_studio.url, label_studio.legacy_token)
    full = orjson.loads(source.take_snapshot(str(pid), tmp_path / "full").export_path.read_bytes())
    since = _server_time(max(t["updated_at"] for t in full))
    label_studio.annotate(task_ids[2], [])
    changed = source.take_snapshot(str(pid), tmp_path / "changed", changed_since=since)
    assert [t["id"] for t in orjson.loads(changed.export_path.read_bytes())] == [task_ids[2]]
    assert source.client.views.list(project=pid) == []  # the temporary view is gone


def test_missing_project_says_so(label_studio, tmp_path):
    with pytest.raises(LabelStudioError, match=f"Label Studio at {label_studio.url} has no project 999999 \\(404\\)"):
        LabelStudioSource(label_studio.url, label_studio.legacy_token).take_snapshot("999999", tmp_path)
    assert not (tmp_path / EXPORT_FILE).exists()


def test_wrong_token_says_which_setting_to_check(label_studio, tmp_path):
    with pytest.raises(LabelStudioError, match=r"refused LABEL_STUDIO_API_KEY \(401: Invalid token.\)"):
        LabelStudioSource(label_studio.url, "0" * 40).take_snapshot("1", tmp_path)


def _set_legacy_tokens(label_studio, enabled: bool) -> None:
    client = httpx.Client(base_url=label_studio.url, timeout=30)
    access = client.post("/api/token/refresh/", json={"refresh": label_studio.personal_token}).json()["access"]
    settings = client.get("/api/jwt/settings", headers={"Authorization": f"Bearer {access}"}).json()
    response = client.post("/api/jwt/settings", headers={"Authorization": f"Bearer {access}"},
                           json={**settings, "legacy_api_tokens_enabled": enabled})
    assert response.status_code in (200, 201), response.text


def test_legacy_token_of_an_organization_that_disabled_them_says_how_to_fix_it(label_studio, image_project, tmp_path):
    _set_legacy_tokens(label_studio, False)
    try:
        with pytest.raises(LabelStudioError, match=r"refused the legacy API token.*personal access token.*"
                                                   r"enable legacy tokens"):
            LabelStudioSource(label_studio.url, label_studio.legacy_token).take_snapshot(str(image_project.id),
                                                                                        tmp_path)
        # The way out the message names works.
        LabelStudioSource(label_studio.url, label_studio.personal_token).take_snapshot(str(image_project.id),
                                                                                      tmp_path)
    finally:
        _set_legacy_tokens(label_studio, True)


def test_unreachable_server_is_retried_then_explained(tmp_path):
    port = free_port()  # a port nobody listens on
    source = LabelStudioSource(f"http://127.0.0.1:{port}", "0" * 40, timing=Timing(retries=2, retry_delay=0.01))
    with pytest.raises(LabelStudioError, match=r"could not read project 1 at http://127\.0\.0\.1:\d+ after 3 "
                                               r"attempts: ConnectError.*Is Label Studio running"):
        source.take_snapshot("1", tmp_path)


def test_partition_key_that_is_not_a_project_id_is_refused(tmp_path):
    with pytest.raises(LabelStudioError, match="'cars' is not a Label Studio project id"):
        LabelStudioSource("http://127.0.0.1:1", "0" * 40).take_snapshot("cars", tmp_path)


def test_missing_settings_name_the_environment_variables():
    with pytest.raises(LabelStudioError, match="set LABEL_STUDIO_URL"):
        LabelStudioSource("", "key")
    with pytest.raises(LabelStudioError, match="set LABEL_STUDIO_API_KEY"):
        LabelStudioSource("http://localhost:8080", "")
