"""The Label Studio token never leaves the process: every command and every asset is run against a real
server with a recognizable token and debug logging, then every log, Dagster event and metadata entry,
report, manifest, card, snapshot, store (Parquet, read back as values too), reuse index, dataset file
and media cache file is scanned for it and its obvious encodings.

The scanner is shown to find the token where it is put on purpose (a control file of each kind), so a
clean scan means something.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsflow_tests.live_projects import IMAGES

TOOLS = Path(sys.executable).parent
LOG_ENV = {"DEBUG": "1", "LOG_LEVEL": "DEBUG"}  # request logging on: the place a header would leak first


def encodings(token: str) -> set[bytes]:
    """The token as it could appear if leaked: raw, upper/lower case, URL-quoted, base64 (bare, in a Basic
    or `Token …` header) and UTF-16 (a Windows log), and the signature of a JWT on its own."""
    forms = {token, token.upper(), token.lower(), urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(token)}
    for text in (token, f"Token {token}", f"Bearer {token}", f":{token}"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(text.encode()).decode().rstrip("="))
    if token.count(".") == 2:  # a JWT: its signature alone is as secret
        forms.add(token.rsplit(".", 1)[1])
    needles = {form.encode() for form in forms}
    needles.add(token.encode("utf-16-le"))
    return needles


def parquet_text(path: Path) -> bytes:
    """A Parquet file's values as text: compressed pages need not hold the token's bytes as written."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        return b""
    return repr(table.to_pylist()).encode("utf-8", "backslashreplace")


def scan_files(roots: Iterable[Path], needles: set[bytes]) -> list[str]:
    """Every file under `roots` (bytes, and Parquet files' values) holding any needle: 'path: needle'."""
    hits = []
    for root in roots:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink()):
            contents = path.read_bytes()
            if path.suffix == ".parquet" or contents[:4] == b"PAR1":
                contents += b"\n" + parquet_text(path)
            hits += [f"{path}: {needle[:12]!r}…" for needle in needles if needle in contents]
    return hits


def scan_text(where: str, text: str, needles: set[bytes]) -> list[str]:
    data = text.encode("utf-8", "backslashreplace")
    return [f"{where}: {needle[:12]!r}…" for needle in needles if needle in data]


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stderr[-4000:]}"
    return result


def dagster_records(home: Path) -> list[tuple[str, str]]:
    """Every event of every run in the instance at `home`, with its metadata entries, as text; and every
    asset materialization's and check evaluation's metadata read through the instance's API."""
    import dagster as dg

    texts = []
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert runs, "no Dagster run recorded"
            for dagster_run in runs:
                texts.append((f"run {dagster_run.run_id} config/tags", repr(dagster_run)))
                for index, record in enumerate(instance.all_logs(dagster_run.run_id)):
                    event = record.dagster_event
                    metadata = ""
                    if event is not None and event.is_step_materialization:
                        materialization = event.step_materialization_data.materialization
                        metadata = repr({key: value.value for key, value in materialization.metadata.items()})
                    elif event is not None and event.event_type_value == "ASSET_CHECK_EVALUATION":
                        evaluation = event.event_specific_data
                        metadata = repr({key: value.value for key, value in evaluation.metadata.items()})
                    texts.append((f"run {dagster_run.run_id} event {index}",
                                  f"{record.user_message}\n{record!r}\n{metadata}"))
            assert any("ASSET_MATERIALIZATION" in text for _, text in texts)
            assert any("ASSET_CHECK_EVALUATION" in text for _, text in texts)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    return texts


def test_the_scanner_finds_the_token_where_it_was_put_on_purpose(tmp_path):
    token = "0123456789abcdef0123456789abcdef01234567"
    needles = encodings(token)
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "log.txt").write_text("GET /api/projects/1 Authorization: Token <redacted>\n")
    assert scan_files([tmp_path / "clean"], needles) == []
    for name, content in {"raw.log": f"Authorization: Token {token}".encode(),
                          "header.b64": base64.b64encode(f"Token {token}".encode()),
                          "url.txt": f"http://h/data/upload/1/a.jpg?token={token.upper()}".encode(),
                          "windows.log": token.encode("utf-16-le")}.items():
        (tmp_path / "control" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "control" / name).write_bytes(content)
    # Compressed Parquet: the page holds the value compressed with others; the scan reads the values too.
    pq.write_table(pa.table({"raw": [f'{{"token": "{token}", "pad": "{"ab" * 500}"}}'] * 50}),
                   tmp_path / "control" / "store.parquet", compression="zstd")
    hits = scan_files([tmp_path / "control"], needles)
    assert {hit.split(":")[0].rsplit("/", 1)[1] for hit in hits} == {"raw.log", "header.b64", "url.txt", "windows.log",
                                                                     "store.parquet"}
    assert scan_text("stdout", f"x Bearer {token} y", needles)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJlLW9mLXRoZS1qd3QtaXMtc2VjcmV0"
    assert scan_text("log", "signature c2lnbmF0dXJlLW9mLXRoZS1qd3QtaXMtc2VjcmV0 alone", encodings(jwt))


def test_no_command_or_asset_writes_or_logs_the_token(label_studio, image_project, tmp_path):
    project = str(image_project.id)
    legacy, personal = label_studio.legacy_token, label_studio.personal_token
    needles = encodings(legacy) | encodings(personal)
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "LOG_LEVEL", "DAGSTER_HOME")}
    env = {**base, **LOG_ENV, "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": legacy,
           "LSFLOW_MEDIA_CACHE": str(tmp_path / "export-cache")}
    outputs: list[tuple[str, str]] = []
    lsflow = str(TOOLS / "lsflow")

    # lsflow export, with both kinds of token; formats that copy the images download them with the token.
    exported = tmp_path / "export"
    formats = "JSON,CSV,COCO_WITH_IMAGES,YOLO_WITH_IMAGES,VOC,YOLO_OBB,BRUSH_TO_PNG"
    result = run([lsflow, "export", project, formats, "--path", str(exported)], env, tmp_path)
    outputs.append(("lsflow export", result.stdout + result.stderr))
    assert "POST" in result.stderr and " downloaded (" in result.stderr  # the debug log really ran
    result = run([lsflow, "export", project, "COCO,JSON_MIN", "--path", str(tmp_path / "export-personal")],
                 {**env, "LABEL_STUDIO_API_KEY": personal, "LSFLOW_MEDIA_CACHE": str(tmp_path / "personal-cache")},
                 tmp_path)
    outputs.append(("lsflow export (personal token)", result.stdout + result.stderr))

    # lsflow convert of that snapshot, its media downloaded from the server with the token (no media root).
    snapshot = exported / ".lsflow" / f"project-{project}" / "snapshot"
    result = run([lsflow, "convert", str(snapshot / "export.json"), "--format", "COCO_WITH_IMAGES,YOLO,VOC,JSON",
                  "--out", str(tmp_path / "convert"), "--config", str(snapshot / "label_config.xml"),
                  "--label-studio-url", label_studio.url, "--cache-dir", str(tmp_path / "convert-cache")],
                 env, tmp_path)
    outputs.append(("lsflow convert", result.stdout + result.stderr))
    cached = [p for p in (tmp_path / "convert-cache").rglob("*") if p.is_file()]
    assert len([p for p in cached if p.suffix in (".jpg", ".png")]) == len(IMAGES)  # each upload downloaded

    # Dagster: register the partition, materialize every asset (and its checks) from the live server.
    home = tmp_path / "dagster-home"
    home.mkdir()
    dagster_env = {**env, "DAGSTER_HOME": str(home), "LSFLOW_SOURCE": "label_studio",
                   "LSFLOW_OUTPUT_ROOT": str(tmp_path / "dagster-out"), "LSFLOW_MEDIA_CACHE": str(tmp_path / "dagster-cache")}
    result = run([lsflow, "partitions", "add", project], dagster_env, tmp_path)
    outputs.append(("lsflow partitions add", result.stdout + result.stderr))
    result = run([str(TOOLS / "dagster"), "asset", "materialize", "-m", "lsflow.definitions", "--select", "*",
                  "--partition", project], dagster_env, tmp_path, timeout=900)
    outputs.append(("dagster asset materialize", result.stdout + result.stderr))
    assert "RUN_SUCCESS" in result.stdout + result.stderr
    assert any((tmp_path / "dagster-cache").rglob("*.jpg"))  # the assets downloaded media with the token

    # lsflow versions over both output trees.
    for args in (["--path", str(exported), "COCO_WITH_IMAGES"], ["--root", str(tmp_path / "dagster-out"), "COCO"]):
        result = run([lsflow, "versions", "list", project, args[2], args[0], args[1], "--json"], env, tmp_path)
        outputs.append((f"lsflow versions list {args[0]}", result.stdout + result.stderr))
        assert '"version' in result.stdout

    hits = []
    for where, text in outputs + dagster_records(home):
        hits += scan_text(where, text, needles)
    # Every file written: datasets, versions (manifests, cards), snapshots, stores, reuse indexes, media
    # caches, the Dagster instance (event log database, compute logs of each step).
    roots = [exported, tmp_path / "export-personal", tmp_path / "convert", tmp_path / "export-cache",
             tmp_path / "personal-cache", tmp_path / "convert-cache", tmp_path / "dagster-out",
             tmp_path / "dagster-cache", home]
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "manifest.json" for p in files)
    assert any("compute_logs" in p.parts for p in files) or any(p.suffix in (".out", ".err") for p in files)
    hits += scan_files(roots, needles)
    assert hits == [], "the token leaked:\n" + "\n".join(hits)

    # The control: the same scan over the same trees finds the token once it is written there.
    (tmp_path / "dagster-out" / "leak.txt").write_text(f"Authorization: Token {legacy}")
    assert [hit for hit in scan_files(roots, needles) if "leak.txt" in hit]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
