"""A real Label Studio server for the test session, and the few calls tests need to fill it.

One server per pytest session (a cold start takes ~20 s): `LABEL_STUDIO_BIN` (set by `make test`,
default `.venv-ls/bin/label-studio`) is started on a free loopback port with a throw-away base data
dir; tests create their own projects so they do not interfere with each other.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = REPO_ROOT / ".venv-ls" / "bin" / "label-studio"
STARTUP_TIMEOUT = 240.0
EMAIL = "lsflow-tests@example.com"


class LabelStudioUnavailable(RuntimeError):
    pass


def label_studio_binary() -> Path:
    binary = Path(os.environ.get("LABEL_STUDIO_BIN") or DEFAULT_BINARY)
    if not binary.is_file():
        raise LabelStudioUnavailable(
            f"no Label Studio at {binary}: run `make test` (it installs label-studio into .venv-ls and sets "
            "LABEL_STUDIO_BIN), or set LSFLOW_SKIP_LIVE=1 to skip the real-server tests on purpose"
        )
    return binary


def free_port() -> int:
    # Label Studio silently moves to another port when its port is busy, so pick one that is free now.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class UploadedMedia(str):
    """The `/data/upload/…` reference of an uploaded file; `.task_id` is the task the upload created."""

    task_id: int

    def __new__(cls, reference: str, task_id: int) -> UploadedMedia:
        media = super().__new__(cls, reference)
        media.task_id = task_id
        return media


class LabelStudioServer:
    def __init__(self, binary: Path, base_dir: Path):
        self.binary = binary
        self.base_dir = base_dir
        self.media_dir = base_dir / "media"
        self.log_path = base_dir / "label-studio.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.legacy_token = secrets.token_hex(20)  # 40 chars, the most Label Studio accepts
        # Signs the personal access tokens (JWTs); given, so a restart keeps them valid. Left to Label Studio,
        # the key it generates and saves in its data folder's .env may start with "$", which django-environ
        # reads back on the next start as a reference to another variable: the server then makes a new key
        # and every personal access token is refused ("Token is invalid").
        self._secret_key = secrets.token_urlsafe(50)
        self._password = secrets.token_urlsafe(16)
        self._process: subprocess.Popen | None = None
        self._http: httpx.Client | None = None
        self.personal_token = ""
        self.client: LabelStudio | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LabelStudioServer:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.base_dir),
            "LABEL_STUDIO_USERNAME": EMAIL,
            "LABEL_STUDIO_PASSWORD": self._password,
            "LABEL_STUDIO_USER_TOKEN": self.legacy_token,
            "SECRET_KEY": self._secret_key,
            # Legacy tokens are off for new organizations unless enabled on first boot.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LATEST_VERSION_CHECK": "0",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.base_dir, start_new_session=True,
            )
        try:
            self._wait_healthy()
            self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.legacy_token}"},
                                      timeout=60)
            if not self.personal_token:  # a restart keeps it: the server allows one per user, and it stays valid
                self.personal_token = self._mint_personal_token()
            self.client = LabelStudio(base_url=self.url, api_key=self.legacy_token)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LabelStudioUnavailable(
                    f"Label Studio exited with code {self._process.returncode} while starting:\n{self._log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise LabelStudioUnavailable(f"Label Studio not healthy after {STARTUP_TIMEOUT:.0f} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is not None and self._process.poll() is None:
            # The CLI spawns the web server as a child; stop the whole group it leads.
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None

    def _mint_personal_token(self) -> str:
        """A personal access token (a JWT refresh token), as a user gets it from the UI: log in, ask."""
        with httpx.Client(base_url=self.url, timeout=60, follow_redirects=True) as browser:
            browser.get("/user/login/")
            csrf = browser.cookies["csrftoken"]
            login = browser.post("/user/login/", data={"email": EMAIL, "password": self._password,
                                                       "csrfmiddlewaretoken": csrf},
                                 headers={"Referer": f"{self.url}/user/login/"})
            login.raise_for_status()
            if "sessionid" not in browser.cookies:
                raise LabelStudioUnavailable(f"could not log in to Label Studio as {EMAIL}")
            response = browser.post("/api/token/", headers={"X-CSRFToken": browser.cookies["csrftoken"],
                                                            "Referer": f"{self.url}/"})
            response.raise_for_status()
            return response.json()["token"]

    # --- filling projects --------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise AssertionError(f"{method} {path} → {response.status_code}: {response.text[:500]}")
        return response

    def create_project(self, title: str, label_config: str) -> int:
        return self._call("POST", "/api/projects/", json={"title": title, "label_config": label_config}).json()["id"]

    def upload(self, project_id: int, path: Path) -> UploadedMedia:
        """Upload one file as Label Studio's import does (one file per request: one task per file)."""
        with open(path, "rb") as stream:
            body = self._call("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                              files={"file": (Path(path).name, stream)}).json()
        (task_id,) = body["task_ids"]
        data = self._call("GET", f"/api/tasks/{task_id}").json()["data"]
        (reference,) = [value for value in data.values() if isinstance(value, str) and "/data/upload/" in value]
        return UploadedMedia(reference, task_id)

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        body = self._call("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                          json=tasks).json()
        return body["task_ids"]

    def annotate(self, task_id: int, result: list[dict], **fields) -> int:
        """An annotation; `was_cancelled=True` makes it a skipped one, `ground_truth=True` a ground truth."""
        body = {"result": result, **fields}
        return self._call("POST", f"/api/tasks/{task_id}/annotations/", json=body).json()["id"]

    def predict(self, task_id: int, result: list[dict], model_version: str, score: float) -> int:
        body = {"task": task_id, "result": result, "model_version": model_version, "score": score}
        return self._call("POST", "/api/predictions/", json=body).json()["id"]
