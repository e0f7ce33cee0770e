"""Resolving media references on this machine: Label Studio uploads and local files, what is refused
and why, and what a user is told when a file is missing."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from lsflow.cli import main
from lsflow.core.model.label_config import LabelConfig
from lsflow.sources.export_file import iter_export_tasks
from lsflow.sources.media import MediaResolver, MediaStatus, media_keys, media_references
from lsflow.sources.media_access import AllowList, Origin
from lsflow.sources.media_download import DownloadLimits
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_MEDIA


@pytest.fixture
def document_root(tmp_path):
    """A LOCAL_FILES_DOCUMENT_ROOT with a file, next to a secret that must stay out of reach."""
    root = tmp_path / "storage"
    (root / "dataset 1").mkdir(parents=True)
    (root / "dataset 1" / "a.jpg").write_bytes(b"jpeg bytes")
    (tmp_path / "secret.txt").write_text("not task media")
    return root


def local(document_root, **settings) -> MediaResolver:
    return MediaResolver(local_files_root=document_root, cache_dir=document_root.parent / "cache", **settings)


def test_an_upload_resolves_under_the_media_root():
    outcome = MediaResolver(SAMPLE_MEDIA).resolve("/data/upload/1/3f2a1b9c-street.jpg")
    assert outcome.status is MediaStatus.LOCAL
    assert outcome.path.read_bytes() == (SAMPLE_MEDIA / "upload" / "1" / "3f2a1b9c-street.jpg").read_bytes()


def test_a_local_file_resolves_under_the_document_root_as_label_studio_reads_d(document_root):
    media = local(document_root)
    for reference in ("/data/local-files/?d=dataset%201/a.jpg", "/data/local-files/?d=dataset 1/a.jpg",
                      "/data/local-files?d=dataset%201%2Fa.jpg"):
        outcome = media.resolve(reference)
        assert outcome.status is MediaStatus.LOCAL, reference
        assert outcome.path == document_root / "dataset 1" / "a.jpg"


@pytest.mark.parametrize("reference", [
    "/data/local-files/?d=../secret.txt",
    "/data/local-files/?d=dataset%201/../../secret.txt",
    "/data/local-files/?d=..%2Fsecret.txt",
    "/data/local-files/?d=dataset 1\\..\\..\\secret.txt",
    "/data/upload/1/../../../secret.txt",
    "/data/upload/1/..%2F..%2F..%2Fsecret.txt",
    "/data/upload/%2e%2e/%2e%2e/secret.txt",
    "../secret.txt",
])
def test_traversal_out_of_a_root_is_refused(document_root, reference):
    outcome = local(document_root, media_root=document_root).resolve(reference)
    assert outcome.status is MediaStatus.REFUSED and outcome.path is None
    assert "'..'" in outcome.reason


def test_absolute_paths_outside_the_roots_are_refused_inside_them_read(document_root, tmp_path):
    media = local(document_root)
    refused = media.resolve(str(tmp_path / "secret.txt"))
    assert refused.status is MediaStatus.REFUSED and "absolute path outside" in refused.reason
    assert media.resolve("/etc/passwd").status is MediaStatus.REFUSED
    absolute_d = media.resolve(f"/data/local-files/?d={tmp_path / 'secret.txt'}")
    assert absolute_d.status is MediaStatus.REFUSED and "relative to LOCAL_FILES_DOCUMENT_ROOT" in absolute_d.reason
    inside = media.resolve(str(document_root / "dataset 1" / "a.jpg"))
    assert inside.status is MediaStatus.LOCAL and inside.path.read_bytes() == b"jpeg bytes"


def test_a_link_inside_the_root_that_leads_out_of_it_is_refused(document_root, tmp_path):
    (document_root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    outcome = local(document_root).resolve("/data/local-files/?d=escape.txt")
    assert outcome.status is MediaStatus.REFUSED and "outside" in outcome.reason


@pytest.mark.parametrize("reference", [
    "file:///etc/passwd", "ftp://127.0.0.1/a.jpg", "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)", "gopher://127.0.0.1/x", "HTTP+unix://%2Frun%2Fdocker.sock/x",
])
def test_schemes_other_than_http_and_cloud_storage_are_refused(document_root, reference):
    outcome = local(document_root).resolve(reference)
    assert outcome.status is MediaStatus.REFUSED and "references are not read" in outcome.reason


def test_a_local_file_that_is_not_there_says_to_check_the_mount_and_the_document_root(document_root):
    outcome = local(document_root).resolve("/data/local-files/?d=dataset%201/b.jpg")
    assert outcome.status is MediaStatus.MISSING and outcome.path is None
    assert "mounted" in outcome.reason and f"LOCAL_FILES_DOCUMENT_ROOT={document_root}" in outcome.reason


def test_an_upload_with_neither_a_media_copy_nor_a_server_says_what_to_set(tmp_path):
    outcome = MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path).resolve("/data/upload/1/not-uploaded.jpg")
    assert outcome.status is MediaStatus.MISSING
    assert "LABEL_STUDIO_URL" in outcome.reason and "--media-root" in outcome.reason


def test_a_disallowed_bucket_is_refused_and_an_allowed_one_needs_its_extra(tmp_path):
    refused = MediaResolver(cache_dir=tmp_path).resolve("gs://other-bucket/a.jpg")
    assert refused.status is MediaStatus.REFUSED and "--allow-host gs://other-bucket" in refused.reason
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed: the missing-extra message cannot be seen")
    missing = MediaResolver(cache_dir=tmp_path, allowed=["gs://my-bucket"]).resolve("gs://my-bucket/a.jpg")
    assert missing.status is MediaStatus.MISSING and "pip install 'lsflow[gcs]'" in missing.reason


def test_allow_list_entries_match_hosts_ports_schemes_and_bucket_prefixes():
    allowed = AllowList(["*.example.com", "https://cdn.test", "media.test:8080", "s3://b/images/"])
    assert allowed.allows_origin(Origin.of("https://x.example.com:8443/a.jpg"))
    assert not allowed.allows_origin(Origin.of("http://example.com.evil.test/a.jpg"))
    assert allowed.allows_origin(Origin.of("https://cdn.test/a.jpg"))
    assert not allowed.allows_origin(Origin.of("http://cdn.test/a.jpg"))  # https only
    assert allowed.allows_origin(Origin.of("http://media.test:8080/a.jpg"))
    assert not allowed.allows_origin(Origin.of("http://media.test/a.jpg"))  # another port
    assert allowed.allows_object("s3", "b", "images/a.jpg")
    assert not allowed.allows_object("s3", "b", "other/a.jpg") and not allowed.allows_object("gs", "b", "images/a")
    for bad in ("ftp://host", "host/with/path", "s3://", "ex*ample.com"):
        with pytest.raises(ValueError):
            AllowList([bad])


def test_a_root_of_slash_is_rejected_as_label_studio_does():
    with pytest.raises(ValueError, match="every file on this machine"):
        MediaResolver(local_files_root="/")


def test_each_distinct_reference_is_counted_once_with_its_reason(document_root):
    media = local(document_root)
    for reference in ["/data/local-files/?d=dataset%201/a.jpg"] * 3 + ["/data/local-files/?d=x.jpg"] * 2 + [
        "file:///etc/passwd", "/data/local-files/?d=y.jpg",
    ]:
        media.local_path(reference)
    report = media.report().as_dict()
    assert (report["references"], report["resolved"], report["local"]) == (4, 1, 1)
    assert (report["missing"], report["refused"]) == (2, 1)
    missing = next(p for p in report["problems"] if p["status"] == "missing")
    assert missing["references"] == 2 and missing["example"] == "/data/local-files/?d=x.jpg"


def test_the_token_stays_out_of_descriptions_and_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "s3cr3t-token-value")
    media = MediaResolver.from_environment(cache_dir=tmp_path, limits=DownloadLimits(retries=0))
    assert media.label_studio.url == "http://127.0.0.1:9"
    media.resolve("/data/upload/1/a.jpg")  # port 9 is closed: missing
    text = f"{media.describe()} {media.label_studio!r} {json.dumps(media.report().as_dict())}"
    assert "Label Studio http://127.0.0.1:9" in text and "s3cr3t" not in text


def test_media_references_come_from_the_media_tags_of_the_label_config():
    config = LabelConfig.parse(
        '<View><Image name="img" value="$photo"/><Audio name="a" value="$sound"/><Text name="t" value="$text"/></View>'
    )
    assert media_keys(config) == ("photo", "sound")
    assert media_keys(None) == ("image", "audio")
    references = list(media_references(iter_export_tasks(IMAGE_EXPORT), media_keys(LabelConfig.from_file(IMAGE_CONFIG))))
    assert references == [task["data"]["image"] for task in json.loads(IMAGE_EXPORT.read_text())]


def test_convert_reports_refused_and_missing_media_and_still_writes_the_dataset(tmp_path, document_root):
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        {"id": 1, "data": {"image": "/data/local-files/?d=dataset%201/a.jpg"}, "annotations": []},
        {"id": 2, "data": {"image": "/data/local-files/?d=dataset%201/gone.jpg"}, "annotations": []},
        {"id": 3, "data": {"image": "/data/local-files/?d=../secret.txt"}, "annotations": []},
        {"id": 4, "data": {"image": "http://169.254.169.254/latest/meta-data"}, "annotations": []},
    ]))
    result = CliRunner().invoke(main, [
        "convert", str(export), "--format", "COCO", "--out", str(tmp_path / "out"), "--prefetch-media",
        "--local-files-root", str(document_root), "--cache-dir", str(tmp_path / "cache"),
    ], env={"LABEL_STUDIO_URL": None, "LABEL_STUDIO_API_KEY": None})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "COCO" / "result.json").is_file()
    assert "media: 4 files — 1 on disk, 0 downloaded, 0 from cache, 1 missing, 2 refused" in result.output
    assert "refused 1: host 169.254.169.254:80 is neither the Label Studio instance nor allowed" in result.output


def test_an_upload_folder_that_is_a_link_to_another_disk_is_followed(tmp_path):
    # Label Studio installs often keep media on another volume: media/upload -> /mnt/volume/upload.
    (tmp_path / "volume" / "upload" / "4").mkdir(parents=True)
    (tmp_path / "volume" / "upload" / "4" / "b.png").write_bytes(b"png bytes")
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "upload").symlink_to(tmp_path / "volume" / "upload", target_is_directory=True)
    outcome = MediaResolver(tmp_path / "media", cache_dir=tmp_path / "cache").resolve("/data/upload/4/b.png")
    assert outcome.status is MediaStatus.LOCAL and outcome.path.read_bytes() == b"png bytes"


def test_a_local_file_is_found_whatever_the_other_query_parameters(document_root):
    media = local(document_root)
    for reference in ("/data/local-files/?x=1&d=dataset%201/a.jpg", "/data/local-files/?d=dataset+1/a.jpg&x=1"):
        outcome = media.resolve(reference)
        assert outcome.status is MediaStatus.LOCAL and outcome.path == document_root / "dataset 1" / "a.jpg"


def test_a_url_whose_host_cannot_be_parsed_is_refused_not_raised(tmp_path):
    outcome = MediaResolver(cache_dir=tmp_path).resolve("http://[::1/a.jpg")
    assert outcome.status is MediaStatus.REFUSED and outcome.reason == "a URL whose host cannot be parsed"


def test_full_urls_of_an_instance_under_a_sub_path_are_read_from_the_media_copy(tmp_path):
    (tmp_path / "media" / "upload" / "4").mkdir(parents=True)
    (tmp_path / "media" / "upload" / "4" / "b.png").write_bytes(b"png bytes")
    media = MediaResolver(tmp_path / "media", cache_dir=tmp_path / "cache", label_studio_url="http://127.0.0.1:9/ls/",
                          api_key="token", limits=DownloadLimits(retries=0))
    own = media.resolve("http://127.0.0.1:9/ls/data/upload/4/b.png")
    assert own.status is MediaStatus.LOCAL and own.path.read_bytes() == b"png bytes"
    at_the_root = media.resolve("http://127.0.0.1:9/data/upload/4/b.png")
    assert at_the_root.status is MediaStatus.LOCAL
    elsewhere = media.resolve("http://127.0.0.1:9/other/data/upload/4/b.png")  # not the instance: downloaded
    assert elsewhere.status is MediaStatus.MISSING and "cannot download from" in elsewhere.reason


def test_a_reference_httpx_cannot_request_is_refused_not_raised(tmp_path):
    media = MediaResolver(cache_dir=tmp_path, label_studio_url="http://127.0.0.1:9", api_key="token")
    outcome = media.resolve("/data/upload/1/a.jpg\n")  # urlsplit drops the newline, the download URL keeps it
    assert outcome.status is MediaStatus.REFUSED and outcome.reason.startswith("not a URL that can be requested")
