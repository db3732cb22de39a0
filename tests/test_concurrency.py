"""Concurrency: every runner against a real server, and simultaneous `kedro run`s on a fresh store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.project_factory import KedroProject, make_project, start_kedro_in_fork
from tests.server_fixtures import all_artifacts, make_team_project
from tests.tracking_helpers import output, runs_of


@pytest.fixture(scope="module")
def server_project(tmp_path_factory: pytest.TempPathFactory, mlflow_server) -> KedroProject:  # noqa: F811
    return make_team_project(tmp_path_factory.mktemp("runners"), mlflow_server.uri, package="runners_project")


@pytest.mark.parametrize(
    ("runner", "mp_context"),
    [("ThreadRunner", None), ("ParallelRunner", "spawn"), ("ParallelRunner", "fork")],
)
def test_every_runner_logs_one_complete_run_to_the_server(server_project, mlflow_server, runner,  # noqa: F811
                                                          mp_context):
    client = mlflow_server.client
    before = {r.info.run_id for r in runs_of(server_project, uri=mlflow_server.uri)}
    # in the test process: ParallelRunner's workers fork or spawn from it, processes of their own
    result = server_project.run_in_process("run", "--runner", runner,
                                           env={"KEDRO_MP_CONTEXT": mp_context} if mp_context else None)

    assert result.returncode == 0, output(result)
    new = [r for r in runs_of(server_project, uri=mlflow_server.uri) if r.info.run_id not in before]
    assert len(new) == 1, f"expected one new run, got {len(new)}"
    [run] = new
    assert run.info.status == "FINISHED"
    assert run.data.tags["kedro.runner"] == runner
    # Besides the pipeline's own metric and artifact: node timings (time.*) and the kedro/ folder (issue 14).
    assert run.data.params == {"factor": "2.0"} and {k for k in run.data.metrics if not k.startswith("time.")} == {"r2"}
    assert "time.pipeline" in run.data.metrics
    assert [a for a in all_artifacts(client, run.info.run_id) if not a.startswith("kedro/")] == ["outputs/predictions.csv"]
    models = client.search_logged_models([run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run.info.run_id}'")
    assert sorted(m.name for m in models) == ["model", "regressor_model"]
    assert all(str(m.status).endswith("READY") for m in models), [str(m.status) for m in models]


SIMULTANEOUS_RUNS = 3


def test_two_kedro_runs_started_together_on_a_fresh_sqlite_store_both_succeed(tmp_path: Path):
    for attempt in range(SIMULTANEOUS_RUNS):
        # Only in-memory intermediates: the two processes share the project but no output file.
        project = make_project(tmp_path / f"attempt-{attempt}", catalog={
            "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"}})
        assert not project.db.exists()
        # Two processes of their own at the same moment, forked from this one: both reach the
        # fresh store within milliseconds (a new interpreter would spend ~5 s on imports first).
        processes = [start_kedro_in_fork("run", cwd=project.path, log=tmp_path / f"attempt-{attempt}-{i}.log")
                     for i in range(2)]
        results = [process.wait(timeout=300) for process in processes]
        for result in results:
            assert result.returncode == 0, f"attempt {attempt}:\n{result.stdout}"
            assert "database is locked" not in result.stdout
        runs = runs_of(project)
        assert len(runs) == 2, f"attempt {attempt}: {len(runs)} runs"
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert {r.data.tags["kedro.pid"] for r in runs} == {str(p.pid) for p in processes}
        assert all(r.data.params == {"factor": "2.0", "model_options": '{"bias": 1.5, "layers": {"depth": 3}}'}
                   for r in runs)
