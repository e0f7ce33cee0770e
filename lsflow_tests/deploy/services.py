"""Throwaway services for the scale-out test: PostgreSQL and Redis from Debian's packages, and processes
started in their own process group so that stopping one stops everything it started.

`LSFLOW_POSTGRES_BIN` / `LSFLOW_REDIS_SERVER` (set by `make test`) name the binaries; a missing one fails
the test with the package to install, as the Label Studio fixture does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from lsflow_tests.label_studio_server import free_port

POSTGRES_BIN = Path(os.environ.get("LSFLOW_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = Path(os.environ.get("LSFLOW_REDIS_SERVER", "/usr/bin/redis-server"))


def _require(binary: Path, package: str) -> None:
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: `apt-get install {package}` (make test installs it)")


def wait_for_port(port: int, timeout: float, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.log_tail()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class Process:
    """A process in a session (process group) of its own, its output in a log file."""

    name: str
    popen: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL to the whole group: the process gets no chance to clean up (a crash)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, grace: float = 10) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left of it."""
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # children that outlived their parent too
        self.popen.wait()


@contextmanager
def process(name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_dir: Path) -> Iterator[Process]:
    log = log_dir / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    started = Process(name, popen, log)
    try:
        yield started
    finally:
        started.stop()


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str
    database: str


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary directory owned by `postgres` (initdb refuses root), on loopback."""
    _require(POSTGRES_BIN / "initdb", "postgresql-15")
    root = Path(tempfile.mkdtemp(prefix="lsflow-pg-"))
    shutil.chown(root, "postgres", "postgres")
    server = Postgres(port=free_port(), user="dagster", password="dagster-test-password", database="dagster")
    (root / "pwfile").write_text(server.password)
    shutil.chown(root / "pwfile", "postgres", "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run([*as_postgres, str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", server.user,
                    f"--pwfile={root / 'pwfile'}", "--auth=scram-sha-256", "--no-sync", "--no-instructions"],
                   check=True, capture_output=True)
    # Durability does not matter for a throwaway cluster; the socket directory must be one postgres owns.
    options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    pg_ctl = [*as_postgres, str(POSTGRES_BIN / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*pg_ctl, "-o", options, "-l", str(root / "postgres.log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True)
        subprocess.run([str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user,
                        server.database], check=True, capture_output=True, env={**os.environ, "PGPASSWORD": server.password})
        yield server
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server(log_dir: Path) -> Iterator[int]:
    """A Redis server on a free loopback port that persists nothing; yields its port."""
    _require(REDIS_SERVER, "redis-server")
    port = free_port()
    command = [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(log_dir)]
    with process("redis", command, os.environ, log_dir, log_dir) as redis:
        wait_for_port(port, 10, redis)
        yield port
