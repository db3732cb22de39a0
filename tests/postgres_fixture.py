"""A throwaway PostgreSQL 15 cluster, and an ``mlflow server`` whose backend store it is.

``initdb`` refuses to run as root, and CI runs as root: the cluster is then created and run
as ``nobody`` (in a folder that user owns), listening on 127.0.0.1 and a free port, trust
authentication, one database ``mlflow``. Everything lives in one temp folder that is removed
with the cluster when the session ends. The binaries come from /usr/lib/postgresql/15/bin
(``.ci/run`` installs the ``postgresql`` package when they are missing).

``pg_mlflow_server`` is the team server as teams deploy it: ``mlflow server
--backend-store-uri postgresql://... --artifacts-destination <folder>``, artifacts proxied.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project_factory import free_port
from tests.server_fixtures import MlflowServer, start_server

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
STARTUP_DEADLINE = 60.0


@dataclass
class PostgresCluster:
    root: Path
    port: int
    user: str | None  # the OS user the server runs as (None: the current user)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def uri(self, database: str = "mlflow") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120,
                              preexec_fn=_as_user(self.user), cwd=self.root, env=_pg_env())

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)


def _pg_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = env["LANG"] = "C.UTF-8"
    return env


def _as_user(user: str | None):  # noqa: ANN202 - a preexec_fn
    if user is None:
        return None
    entry = pwd.getpwnam(user)

    def switch() -> None:
        os.setgid(entry.pw_gid)
        os.setgroups([])
        os.setuid(entry.pw_uid)

    return switch


def start_cluster() -> PostgresCluster:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb is missing): `.ci/run` installs it with "
                    "`apt-get install -y postgresql`.")
    user = "nobody" if os.geteuid() == 0 else None
    # `nobody` must reach the cluster folder: under root the tests' own temp folder is private
    # (0700), so the cluster gets its folder in the system's /tmp, removed with the cluster.
    root = Path(tempfile.mkdtemp(prefix="kms-postgres-", dir="/tmp" if user is not None else None))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(root=root, port=free_port(), user=user)
    try:
        cluster._run(str(PG_BIN / "initdb"), "-D", str(cluster.data), "-U", "postgres", "--auth=trust",
                     "--encoding=UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -c port={cluster.port} -c unix_socket_directories={root} -c fsync=off"
        cluster._run(str(PG_BIN / "pg_ctl"), "-D", str(cluster.data), "-l", str(root / "postgres.log"),
                     "-o", options, "-w", "-t", str(int(STARTUP_DEADLINE)), "start")
        cluster._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "mlflow")
    except subprocess.CalledProcessError as error:
        log = root / "postgres.log"
        details = log.read_text() if log.exists() else ""
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {error.stderr}\n{details}") from error
    return cluster


def remove_cluster(cluster: PostgresCluster) -> None:
    """Stop the server and delete its folder (idempotent)."""
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    # A safety net: a session fixture requested from a parametrized module fixture
    # (getfixturevalue) was seen to outlive pytest's finalizers; never leave a server running.
    atexit.register(remove_cluster, cluster)
    try:
        yield cluster
    finally:
        remove_cluster(cluster)
        atexit.unregister(remove_cluster)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the test session, removed (data and all) at its end."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_mlflow_server(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on the PostgreSQL cluster, artifacts under its --artifacts-destination."""
    root = tmp_path_factory.mktemp("pg-mlflow-server")
    server = start_server(root, backend_store_uri=postgres.uri())
    try:
        yield server
    finally:
        server.stop()
