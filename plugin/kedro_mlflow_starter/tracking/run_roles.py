"""What a kedro run is to the MLflow run it logs into: its owner, a guest, one task of a group run,
or the ``close`` step of a group run. ``TrackedRun`` holds one role and asks it when the run is
joined, while it runs, and when it closes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.tracking import orchestrated
from kedro_mlflow_starter.tracking.failures import call_with_retry, describe_error
from kedro_mlflow_starter.tracking.node_timings import PIPELINE_KEY

if TYPE_CHECKING:  # pragma: no cover
    from kedro_mlflow_starter.tracking.params import PreparedParams
    from kedro_mlflow_starter.tracking.run import TrackedRun


class OwnedRun:
    """A run this kedro run created (or resumed by ``tracking.run.id``): it ends the run."""

    owned = True

    def __init__(self, resumed: bool = False) -> None:
        self.resumed = resumed

    def join(self, run: TrackedRun, params: PreparedParams, tags: Mapping[str, str]) -> None:
        # a resumed run was created elsewhere: it gets our tags too (a new run got them at creation)
        run.log_params_and_tags(params.params, {**params.tags, **(tags if self.resumed else {})})

    def started(self, run: TrackedRun) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass

    def close(self, run: TrackedRun, status: str) -> None:
        run.end(status)

    def state(self, status: str) -> str:
        return status


class JoinedRun(OwnedRun):
    """A run someone else opened (``mlflow.start_run()`` in user code, ``MLFLOW_RUN_ID``): logged
    into and left open."""

    owned = False

    def join(self, run: TrackedRun, params: PreparedParams, tags: Mapping[str, str]) -> None:
        run.log_params_and_tags(params.params, {**params.tags, **tags})

    def close(self, run: TrackedRun, status: str) -> None:
        pass

    def state(self, status: str) -> str:
        return f"joined: pipeline {status}, the run stays open for whoever opened it"


class GroupTask(JoinedRun):
    """One task of a group run (``kedro mlflow run open``): logs only what the run lacks, keeps the
    run's heartbeat while it runs, and tags how it ended for ``close``."""

    def __init__(self, label: str, nodes: Sequence[str], run_params: Mapping[str, Any]) -> None:
        self.label = label
        self.nodes = list(nodes)
        self.run_params = run_params
        self.error: str | None = None
        self._heartbeat: orchestrated.Heartbeat | None = None

    def join(self, run: TrackedRun, params: PreparedParams, tags: Mapping[str, str]) -> None:
        orchestrated.check_same_env(run.run_id, run.tags, self.run_params)
        orchestrated.join(run.client, run.run_id, params.params, params.tags)

    def started(self, run: TrackedRun) -> None:
        self._heartbeat = orchestrated.Heartbeat(run.client, run.run_id)

    def failed(self, error: BaseException) -> None:
        self.error = describe_error(error)

    def close(self, run: TrackedRun, status: str) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        call_with_retry(lambda: orchestrated.record_task_outcome(run.client, run.run_id, self.label, status,
                                                                 self.error, self.nodes))

    def state(self, status: str) -> str:
        return f"joined: task {status}, the run stays open for `kedro mlflow run close`"


class GroupClose(OwnedRun):
    """``kedro mlflow run close``: the status the tasks earned, the pipeline model of a FINISHED run
    (``log_model``), the summary tags and the pipeline's time, then the end of the run."""

    def __init__(self, outcome: orchestrated.Outcome, log_model: Callable[[], str | None] | None,
                 pipeline_time: bool) -> None:
        self.outcome = outcome
        self.log_model = log_model
        self.pipeline_time = pipeline_time
        self.model_uri: str | None = None

    def close(self, run: TrackedRun, status: str) -> None:
        from mlflow.entities import Metric, RunTag

        outcome = self.outcome
        run.fail_pending_models()  # every task has reported: a PENDING model is an upload cut short (a retried close)
        if outcome.status == "FINISHED" and self.log_model is not None:
            try:
                self.model_uri = self.log_model()
            except Exception as error:  # noqa: BLE001 - the run ends FAILED and says why
                outcome.status = "FAILED"
                outcome.failed.append("pipeline model")
                outcome.errors["pipeline model"] = describe_error(error)
        now = int(time.time() * 1000)
        # the group run's time is from `open` to now (the tasks logged their nodes')
        timing = [Metric(PIPELINE_KEY, round((now - run.start_time) / 1000, 6), now, 0)] if self.pipeline_time else []
        tags = [RunTag(key, value) for key, value in orchestrated.summary_tags(outcome).items()]
        call_with_retry(lambda: run.client.log_batch(run.run_id, metrics=timing, tags=tags))
        run.end(outcome.status)

    def state(self, status: str) -> str:
        return self.outcome.status
