"""Media downloads against real HTTP servers on 127.0.0.1: caching by validator, the token's reach,
redirects, retries, size and time limits, concurrency."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
from click.testing import CliRunner
from PIL import Image

from lsflow.cli import main
from lsflow.sources.media import MediaResolver, MediaStatus
from lsflow.sources.media_download import DownloadLimits
from lsflow_tests.sources.media_http_server import (
    MediaHttpServer,
    declaring,
    delayed,
    dribbling,
    endless,
    failing,
    redirect,
    send,
)

TOKEN = "0123456789abcdef0123456789abcdef01234567"
FAST = DownloadLimits(timeout_seconds=5, retries=2, backoff_seconds=0.01, workers=4)


@pytest.fixture
def server():
    with MediaHttpServer() as running:
        yield running


@pytest.fixture
def other():
    """A second host (another port: another origin) that must never see the Label Studio token."""
    with MediaHttpServer() as running:
        yield running


def resolver(tmp_path, limits=FAST, **settings) -> MediaResolver:
    return MediaResolver(cache_dir=tmp_path / "cache", limits=limits, **settings)


def as_label_studio(server: MediaHttpServer, tmp_path, **settings) -> MediaResolver:
    return resolver(tmp_path, label_studio_url=server.origin, api_key=TOKEN, **settings)


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- caching across runs -------------------------------------------------------------------------


def test_an_unchanged_file_is_fetched_once_across_runs_and_a_changed_one_again(server, tmp_path):
    original = os.urandom(5000)
    server.serve_file("/img/a.jpg", original, etag='"v1"')
    url = server.url("/img/a.jpg")
    allowed = [f"127.0.0.1:{server.port}"]

    first = resolver(tmp_path, allowed=allowed).resolve(url)
    assert first.status is MediaStatus.DOWNLOADED and first.path.read_bytes() == original
    assert first.path.name == "a.jpg"

    second = resolver(tmp_path, allowed=allowed).resolve(url)  # a new run, same cache
    assert second.status is MediaStatus.CACHED and second.path.read_bytes() == original
    assert server.seen("/img/a.jpg")[-1].headers["if-none-match"] == '"v1"'

    changed = os.urandom(6000)
    server.serve_file("/img/a.jpg", changed, etag='"v2"')
    third = resolver(tmp_path, allowed=allowed).resolve(url)
    assert third.status is MediaStatus.DOWNLOADED and third.path.read_bytes() == changed


def test_last_modified_alone_is_enough_to_revalidate(server, tmp_path):
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.serve_file("/b.wav", b"RIFF....WAVE", last_modified=stamp)
    allowed = [f"127.0.0.1:{server.port}"]
    assert resolver(tmp_path, allowed=allowed).resolve(server.url("/b.wav")).status is MediaStatus.DOWNLOADED
    assert resolver(tmp_path, allowed=allowed).resolve(server.url("/b.wav")).status is MediaStatus.CACHED
    assert server.seen("/b.wav")[-1].headers["if-modified-since"] == stamp


def test_without_a_validator_a_link_is_downloaded_again_since_a_change_cannot_be_seen(server, tmp_path):
    server.serve_file("/plain.jpg", b"first")
    allowed = [f"127.0.0.1:{server.port}"]
    resolver(tmp_path, allowed=allowed).resolve(server.url("/plain.jpg"))
    server.serve_file("/plain.jpg", b"second")
    again = resolver(tmp_path, allowed=allowed).resolve(server.url("/plain.jpg"))
    assert again.status is MediaStatus.DOWNLOADED and again.path.read_bytes() == b"second"


def test_a_label_studio_upload_is_downloaded_with_the_token_and_not_asked_for_again(server, tmp_path):
    picture = png(33, 21)
    # Label Studio 1.23 serves uploads without ETag or Last-Modified; their names are unique per upload.
    server.serve_file("/data/upload/7/1a2b3c4d-cat.png", picture, token=f"Token {TOKEN}")

    first = as_label_studio(server, tmp_path).resolve("/data/upload/7/1a2b3c4d-cat.png")
    assert first.status is MediaStatus.DOWNLOADED and first.path.read_bytes() == picture
    assert server.seen("/data/upload/7/1a2b3c4d-cat.png")[0].headers["authorization"] == f"Token {TOKEN}"

    second = as_label_studio(server, tmp_path).resolve("/data/upload/7/1a2b3c4d-cat.png")
    assert second.status is MediaStatus.CACHED and second.path.read_bytes() == picture
    assert len(server.seen("/data/upload/7/1a2b3c4d-cat.png")) == 1


def test_a_copy_of_the_media_folder_is_read_before_anything_is_downloaded(server, tmp_path):
    media_root = tmp_path / "media"
    (media_root / "upload" / "7").mkdir(parents=True)
    (media_root / "upload" / "7" / "x.png").write_bytes(b"local copy")
    outcome = as_label_studio(server, tmp_path, media_root=media_root).resolve("/data/upload/7/x.png")
    assert outcome.status is MediaStatus.LOCAL and outcome.path.read_bytes() == b"local copy"
    assert server.requests == []


def test_local_files_come_from_label_studio_when_no_document_root_is_mounted(server, tmp_path):
    server.serve_file("/data/local-files/", b"served by Label Studio", etag='"lf"', token=f"Token {TOKEN}")
    outcome = as_label_studio(server, tmp_path).resolve("/data/local-files/?d=photos/p%201.jpg")
    assert outcome.status is MediaStatus.DOWNLOADED and outcome.path.read_bytes() == b"served by Label Studio"
    assert outcome.path.name == "p_1.jpg"
    assert server.requests[0].path == "/data/local-files/?d=photos/p%201.jpg"


# --- the token and the allow-list -----------------------------------------------------------------


def test_the_token_is_not_sent_along_a_redirect_to_another_host(server, other, tmp_path):
    other.serve_file("/bucket/cat.jpg", b"cat bytes")
    server.routes["/data/upload/7/cat.jpg"] = redirect(other.url("/bucket/cat.jpg"))
    media = as_label_studio(server, tmp_path, allowed=[f"127.0.0.1:{other.port}"])

    outcome = media.resolve("/data/upload/7/cat.jpg")

    assert outcome.status is MediaStatus.DOWNLOADED and outcome.path.read_bytes() == b"cat bytes"
    assert server.requests[0].headers["authorization"] == f"Token {TOKEN}"
    assert [r.headers.get("authorization") for r in other.requests] == [None]


def test_a_redirect_to_a_host_that_is_not_allowed_is_refused_before_it_is_contacted(server, other, tmp_path):
    other.serve_file("/x.jpg", b"x")
    server.routes["/data/upload/7/x.jpg"] = redirect(other.url("/x.jpg"))
    outcome = as_label_studio(server, tmp_path).resolve("/data/upload/7/x.jpg")
    assert outcome.status is MediaStatus.REFUSED and outcome.path is None
    assert f"127.0.0.1:{other.port}" in outcome.reason and "--allow-host" in outcome.reason
    assert other.requests == []


def test_links_to_allowed_hosts_get_no_token_and_other_hosts_are_not_contacted(server, other, tmp_path):
    other.serve_file("/open.jpg", b"public")
    media = as_label_studio(server, tmp_path, allowed=[f"127.0.0.1:{other.port}"])
    assert media.resolve(other.url("/open.jpg")).status is MediaStatus.DOWNLOADED
    assert other.requests[0].headers.get("authorization") is None

    stranger = as_label_studio(server, tmp_path)  # same hosts, nothing allowed
    refused = stranger.resolve(other.url("/open.jpg"))
    assert refused.status is MediaStatus.REFUSED and "neither the Label Studio instance nor allowed" in refused.reason
    assert len(other.requests) == 1


def test_the_same_host_name_on_another_port_is_another_origin_for_the_token(server, tmp_path):
    # localhost and 127.0.0.1 reach the same server, but only the configured origin gets the token.
    server.serve_file("/y.jpg", b"y")
    media = resolver(tmp_path, label_studio_url=server.origin, api_key=TOKEN, allowed=["localhost"])
    assert media.resolve(f"http://localhost:{server.port}/y.jpg").status is MediaStatus.DOWNLOADED
    assert server.requests[0].headers.get("authorization") is None


def test_a_redirect_to_a_non_http_scheme_is_refused(server, tmp_path):
    server.routes["/sneaky.jpg"] = redirect("file:///etc/passwd")
    outcome = resolver(tmp_path, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/sneaky.jpg"))
    assert outcome.status is MediaStatus.REFUSED and "file:" in outcome.reason


# --- errors a user can act on ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404])
def test_label_studio_refusing_a_file_says_to_check_the_token_and_network_access(server, tmp_path, status):
    server.routes["/data/upload/7/gone.jpg"] = lambda handler: send(handler, status, b"{}")
    outcome = as_label_studio(server, tmp_path).resolve("/data/upload/7/gone.jpg")
    assert outcome.status is MediaStatus.MISSING
    assert f"HTTP {status}" in outcome.reason
    assert "LABEL_STUDIO_API_KEY" in outcome.reason and "network access" in outcome.reason
    assert TOKEN not in outcome.reason


def test_a_broken_link_elsewhere_is_missing_with_its_status(server, tmp_path):
    outcome = resolver(tmp_path, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/nothing.jpg"))
    assert outcome.status is MediaStatus.MISSING and "HTTP 404" in outcome.reason


def test_an_unreachable_host_is_missing_and_says_to_check_network_access(tmp_path):
    with MediaHttpServer() as gone:
        port = gone.port
    outcome = resolver(tmp_path, allowed=[f"127.0.0.1:{port}"]).resolve(f"http://127.0.0.1:{port}/a.jpg")
    assert outcome.status is MediaStatus.MISSING and "check network access" in outcome.reason


# --- retries and limits ---------------------------------------------------------------------------


def test_transient_failures_are_retried_with_backoff(server, tmp_path):
    server.serve_file("/ok.jpg", b"finally")
    server.routes["/flaky.jpg"] = failing(2, 503, server.routes["/ok.jpg"])
    outcome = resolver(tmp_path, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/flaky.jpg"))
    assert outcome.status is MediaStatus.DOWNLOADED and outcome.path.read_bytes() == b"finally"
    assert len(server.seen("/flaky.jpg")) == 3


def test_a_server_that_keeps_failing_is_given_up_on_after_the_retries(server, tmp_path):
    server.routes["/down.jpg"] = lambda handler: send(handler, 502, b"bad gateway")
    outcome = resolver(tmp_path, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/down.jpg"))
    assert outcome.status is MediaStatus.MISSING
    assert "HTTP 502" in outcome.reason and "3 attempts" in outcome.reason
    assert len(server.seen("/down.jpg")) == FAST.retries + 1


def test_a_file_announced_over_the_size_limit_is_refused_without_reading_it(server, tmp_path):
    server.routes["/huge.tif"] = declaring(50_000_000)
    limits = DownloadLimits(max_bytes=1_000_000, retries=0)
    outcome = resolver(tmp_path, limits, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/huge.tif"))
    assert outcome.status is MediaStatus.REFUSED and "50,000,000 bytes" in outcome.reason
    assert files_in(tmp_path / "cache") == []


def test_a_body_that_grows_past_the_size_limit_is_cut_off_and_nothing_is_kept(server, tmp_path):
    server.routes["/stream.bin"] = endless()
    limits = DownloadLimits(max_bytes=300_000, retries=0)
    outcome = resolver(tmp_path, limits, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/stream.bin"))
    assert outcome.status is MediaStatus.REFUSED and "size limit of 300,000 bytes" in outcome.reason
    assert files_in(tmp_path / "cache") == []


def test_a_download_slower_than_the_time_limit_is_abandoned(server, tmp_path):
    server.routes["/slow.jpg"] = dribbling(total=1000, every_seconds=0.05)
    limits = DownloadLimits(timeout_seconds=0.5, retries=1, backoff_seconds=0.01)
    started = time.monotonic()
    outcome = resolver(tmp_path, limits, allowed=[f"127.0.0.1:{server.port}"]).resolve(server.url("/slow.jpg"))
    assert outcome.status is MediaStatus.MISSING and "time limit of 0.5 s" in outcome.reason
    assert time.monotonic() - started < 3  # two attempts of 0.5 s, not the 50 s the server would take
    assert files_in(tmp_path / "cache") == []


def test_prefetch_downloads_concurrently_and_reports_each_file_once(server, tmp_path):
    references = []
    for n in range(8):
        server.serve_file(f"/f{n}.jpg", f"file {n}".encode(), etag=f'"{n}"')
        server.routes[f"/f{n}.jpg"] = delayed(0.3, server.routes[f"/f{n}.jpg"])
        references.append(server.url(f"/f{n}.jpg"))
    media = resolver(tmp_path, allowed=[f"127.0.0.1:{server.port}"])
    seen = []
    started = time.monotonic()
    media.prefetch(references + references, on_resolved=seen.append)
    elapsed = time.monotonic() - started

    assert sorted(o.reference for o in seen) == sorted(references)
    assert 2 <= server.max_in_flight <= FAST.workers
    assert elapsed < 8 * 0.3  # one at a time would take 2.4 s
    assert media.report().as_dict()["downloaded"] == 8
    assert [media.local_path(r).read_bytes() for r in references] == [f"file {n}".encode() for n in range(8)]
    assert len(server.requests) == 8  # local_path after prefetch asks nothing again


# --- through the command line ---------------------------------------------------------------------


def test_convert_downloads_task_images_for_their_sizes_and_reports_what_it_could_not_get(server, tmp_path):
    server.serve_file("/img/unlabeled.png", png(64, 48), etag='"u"')
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        {"id": 1, "data": {"image": server.url("/img/unlabeled.png")}, "annotations": []},
        {"id": 2, "data": {"image": server.url("/img/missing.png")}, "annotations": []},
        {"id": 3, "data": {"image": "/data/upload/1/../../../etc/passwd"}, "annotations": []},
    ]))
    args = ["convert", str(export), "--format", "COCO", "--out", str(tmp_path / "out"),
            "--allow-host", f"127.0.0.1:{server.port}", "--cache-dir", str(tmp_path / "cache"), "--prefetch-media"]

    result = CliRunner().invoke(main, args, env={"LABEL_STUDIO_URL": None, "LABEL_STUDIO_API_KEY": None})

    assert result.exit_code == 0, result.output
    coco = json.loads((tmp_path / "out" / "COCO" / "result.json").read_text())
    assert [(i["id"], i["width"], i["height"]) for i in coco["images"]] == [(1, 64, 48)]
    assert "media: 3 files — 0 on disk, 1 downloaded, 0 from cache, 1 missing, 1 refused" in result.output
    assert "missing 1: " in result.output and "HTTP 404" in result.output
    assert "refused 1: '..' in a media path" in result.output

    again = CliRunner().invoke(main, args, env={"LABEL_STUDIO_URL": None, "LABEL_STUDIO_API_KEY": None})
    assert "0 downloaded, 1 from cache" in again.output
