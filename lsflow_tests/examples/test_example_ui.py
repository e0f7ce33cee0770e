"""The Dagster UI of examples/label_studio_training, in a real browser.

A copy of the example project (outside the repository) is materialized with `dg launch`, then
`dagster-webserver` serves it and headless Chromium (Debian's, driven by Playwright; nothing downloads
a browser) checks what a user checks: the lineage graph links the Label Studio assets to the training
asset; a dataset asset's page shows its version, its checks (passed) and its preview; the sensor and
the schedule are listed. Every check leaves a screenshot under its test's tmp_path/screenshots.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import dagster as dg
import pytest

from lsflow.core.formats import writer_class
from lsflow.project.datasets import REGION_ACCOUNTING
from lsflow_tests.dg_project import TOOLS, copy_example, launch_everything, project_env
from lsflow_tests.label_studio_server import free_port

# `make test` names the browser it installed: there, a missing browser or Playwright fails the test; a bare
# `pytest` on a machine without them skips it.
REQUIRED = os.environ.get("LSFLOW_CHROMIUM")
CHROMIUM = Path(REQUIRED or "/usr/bin/chromium")
if REQUIRED and not CHROMIUM.is_file():
    raise RuntimeError(f"LSFLOW_CHROMIUM={REQUIRED}: no such browser (make test installs Debian's chromium)")
if REQUIRED:
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed: make install")
expect = sync_api.expect
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (Debian's chromium package)")

MODULE = "label_studio_training.definitions"
DATASET = dg.AssetKey(["label_studio", "dataset_yolo_with_images"])
TRAINED = dg.AssetKey("crop_classifier")
# The chain from Label Studio to the model, and a dataset the model does not read.
UPSTREAM_OF_MODEL = ("label_studio_snapshot", "normalized_tasks", "dataset_yolo_with_images", "crop_classifier")
NOT_UPSTREAM_OF_MODEL = "dataset_coco"
SENSOR = "label_studio_label_studio_projects"
SCHEDULE = "label_studio_full_export"
CHECKS = (REGION_ACCOUNTING, *(spec.name for spec in writer_class("YOLO_WITH_IMAGES").checks))
TIMEOUT_MS = 30_000  # the UI's first queries wait for the code location
SERVER_START_S = 90
VIEWPORT = {"width": 1920, "height": 1200}  # wide enough that the lineage graph prints whole asset names
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@dataclass(frozen=True)
class Example:
    project: Path  # the copy, outside the repository
    env: dict[str, str]
    dataset: dict[str, Any]  # the newest materialization's metadata of DATASET, from the instance


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    """The example copied out of the repository (reading the repository's sample by absolute path), every
    asset of partition 1 materialized in an instance of its own."""
    root = tmp_path_factory.mktemp("example-ui")
    project = copy_example(root / "label_studio_training")
    home = root / "dagster_home"
    env = project_env(project, home)
    # The webserver's "Join the Dagster community" dialog covers the page until it has been seen once.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    launch_everything(project, env, "1")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.fetch_materializations(DATASET, limit=1).records
        dataset = {key: value.value for key, value in record.asset_materialization.metadata.items()}
        assert instance.fetch_materializations(TRAINED, limit=1).records
    # The copy is the project that ran: its outputs are under tmp, none in the repository.
    assert Path(dataset["version_path"]).is_relative_to(project)
    return Example(project, env, dataset)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the webserver's process group (it and its code server); SIGKILL to what is left after it
    exits, or after 20 s."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(example: Example, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dagster-webserver -m label_studio_training.definitions` on the copy; yields its base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("webserver") / "webserver.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(TOOLS / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", MODULE,
             "--working-directory", str(example.project / "src")],
            cwd=example.project, env=example.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited ({process.returncode}):\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except (URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver not up after {SERVER_START_S} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@contextmanager
def screenshot(page: Any, tmp_path: Path, name: str) -> Iterator[None]:
    """A full-page screenshot when the block ends: the checked page, or the page a check failed on."""
    path = tmp_path / "screenshots" / f"{name}.png"
    try:
        yield
    finally:
        path.parent.mkdir(exist_ok=True)
        page.screenshot(path=path, full_page=True)
        print(f"screenshot {name}: {path}  ({page.url})")


def shown(locator: Any) -> None:
    expect(locator.first).to_be_visible(timeout=TIMEOUT_MS)


def metadata_row(page: Any, key: str) -> Any:
    """The row of a metadata table whose key cell is `key`."""
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))


def graph(page: Any) -> Any:
    """The nodes of a lineage graph (HTML drawn inside the graph's SVG)."""
    return page.locator("svg foreignObject")


def live_status_shown(page: Any) -> None:
    """The graph's nodes show the run's outcome: the dataset's checks passed, the model materialized."""
    shown(graph(page).get_by_text(f"{len(CHECKS)} / {len(CHECKS)} Passed", exact=True))
    shown(graph(page).get_by_text("Materialized", exact=True))


def section(page: Any, heading: str) -> Any:
    """A heading of an asset page's side panel with what it lists (e.g. "Upstream assets")."""
    return page.get_by_text(heading, exact=True).locator("xpath=..")


def test_the_lineage_graph_links_the_label_studio_assets_to_the_training_asset(page, server, tmp_path):
    # The global asset lineage, its groups expanded (⌥E, "Expand all groups"): every asset of the project.
    with screenshot(page, tmp_path, "lineage_global"):
        page.goto(f"{server}/asset-groups")
        shown(page.get_by_text("Global asset lineage", exact=True))
        shown(graph(page))  # the graph is drawn (its groups collapsed): the shortcut has groups to expand
        page.keyboard.press("Alt+e")
        for name in (*UPSTREAM_OF_MODEL, NOT_UPSTREAM_OF_MODEL):
            shown(graph(page).get_by_text(name, exact=True))
        live_status_shown(page)

    # The model's upstream lineage: exactly the chain from the Label Studio export to it.
    with screenshot(page, tmp_path, "lineage_crop_classifier_upstream"):
        page.goto(f"{server}/assets/crop_classifier?view=lineage&lineageScope=upstream&lineageDepth=3")
        for name in UPSTREAM_OF_MODEL:
            shown(graph(page).get_by_text(name, exact=True))
        live_status_shown(page)
        expect(page.get_by_text(NOT_UPSTREAM_OF_MODEL)).to_have_count(0)

    # The model's page names the dataset as its upstream asset, and the dataset's page the model as downstream.
    with screenshot(page, tmp_path, "crop_classifier_overview"):
        page.goto(f"{server}/assets/crop_classifier")
        expect(section(page, "Upstream assets")).to_contain_text("label_studio / dataset_yolo_with_images", timeout=TIMEOUT_MS)
        expect(section(page, "Downstream assets")).not_to_contain_text("dataset_yolo_with_images")
    page.goto(f"{server}/assets/label_studio/dataset_yolo_with_images")
    expect(section(page, "Downstream assets")).to_contain_text("crop_classifier", timeout=TIMEOUT_MS)


def test_the_dataset_page_shows_its_version_and_preview(page, server, example, tmp_path):
    version = str(example.dataset["dataset_version"])
    preview = str(example.dataset["card_preview"])
    assert preview.endswith(".png") and Path(preview).is_relative_to(Path(example.dataset["version_path"]))

    # Partition 1's latest materialization (the Partitions tab).
    with screenshot(page, tmp_path, "dataset_partition_1"):
        page.goto(f"{server}/assets/label_studio/dataset_yolo_with_images?view=partitions&partition=1")
        expect(metadata_row(page, "dataset_version")).to_contain_text(version, timeout=TIMEOUT_MS)
        expect(metadata_row(page, "version_path")).to_contain_text(str(example.dataset["version_path"]))
        expect(metadata_row(page, "card_preview")).to_contain_text(preview)
        expect(metadata_row(page, "dataset_card")).to_contain_text(str(example.dataset["dataset_card"]))

    # The Overview: the same version; the definition's source is the copy's defs.yaml (the webserver loaded the copy).
    with screenshot(page, tmp_path, "dataset_overview"):
        page.goto(f"{server}/assets/label_studio/dataset_yolo_with_images")
        expect(metadata_row(page, "dataset_version")).to_contain_text(version, timeout=TIMEOUT_MS)
        expect(metadata_row(page, "card_preview")).to_contain_text(preview)
        source = page.get_by_role("link").filter(has_text="defs.yaml")
        copy_yaml = example.project / "src" / "label_studio_training" / "defs" / "label_studio" / "defs.yaml"
        expect(source).to_have_attribute("href", re.compile(rf"^vscode://file/{re.escape(str(copy_yaml))}(:\d+)?$"),
                                         timeout=TIMEOUT_MS)
        expect(section(page, "Sensors")).to_contain_text(SENSOR)

    # The preview the page names: an image that opens.
    with screenshot(page, tmp_path, "dataset_preview"):
        page.goto(Path(preview).as_uri())
        image = page.locator("img")
        expect(image).to_be_visible(timeout=TIMEOUT_MS)
        assert image.evaluate("img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")


def test_the_dataset_checks_are_listed_and_passed(page, server, tmp_path):
    with screenshot(page, tmp_path, "dataset_checks"):
        page.goto(f"{server}/assets/label_studio/dataset_yolo_with_images?view=checks&checkDetail={REGION_ACCOUNTING}")
        shown(page.get_by_text(f"Checks ({len(CHECKS)})", exact=True))
        for name in CHECKS:
            # The list's entry: the check's name and its latest result.
            expect(page.get_by_title(name, exact=True).locator("xpath=..")).to_contain_text("Succeeded", timeout=TIMEOUT_MS)
        # The selected check's latest evaluation.
        shown(page.get_by_text("Evaluation result", exact=True))
        shown(page.get_by_text("Passed", exact=True))


def test_the_sensor_and_the_schedule_are_listed(page, server, tmp_path):
    with screenshot(page, tmp_path, "automation"):
        page.goto(f"{server}/automation")
        shown(page.get_by_text(SCHEDULE, exact=True))
        shown(page.get_by_text(SENSOR, exact=True))
        shown(page.get_by_text(MODULE, exact=True))  # the code location they belong to
