"""One worker process of ``kedro mlflow sweep``: runs queued trials until none is left.

Started by ``framework/cli_sweep.py`` as ``python -m kedro_mlflow_starter.framework.sweep_worker
'<json>'``. It pays Kedro's, MLflow's and the project's imports once, then runs each trial as
one run of a ``KedroServiceSession`` (Kedro's session made for many runs in one process), with
the trial's values as runtime parameters: exactly what ``kedro run --params ...`` runs, tracked
by the project's own hook. The only difference is the channel of ``tracking/run_tags.py``: the
run the hook opens is named ``<sweep> #<trial>`` and tagged as a child of the parent run.

Events go to the coordinator as JSON lines on the file descriptor it passes (``events_fd``);
everything Kedro prints goes to stdout/stderr, which the coordinator keeps for error reports.
SIGTERM while a trial runs ends it KILLED (the run's own status guard); between trials it
stops the worker once the current bookkeeping is done.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

_stop = {"requested": False}


def _on_sigterm(signum: int, frame: Any) -> None:  # between trials: finish the bookkeeping, then stop
    _stop["requested"] = True


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    events = os.fdopen(spec["events_fd"], "w", buffering=1, encoding="utf-8")

    def emit(**event: Any) -> None:
        events.write(json.dumps(event, default=str) + "\n")
        events.flush()

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    project_path = Path(spec["project_path"])
    os.chdir(project_path)
    from kedro.framework.session import KedroServiceSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    import optuna

    from kedro_mlflow_starter.config.sweeps import Sweep, merge, nested
    from kedro_mlflow_starter.tracking import sweep as sweeps
    from kedro_mlflow_starter.tracking.client import client_for

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = Sweep.model_validate(spec["sweep"])
    storage, _ = sweeps.open_storage(spec["storage"], project_path)
    study = optuna.load_study(study_name=spec["study_name"], storage=storage)
    client = client_for(spec["tracking_uri"], spec["registry_uri"])
    session = KedroServiceSession.create(project_path=project_path, env=spec["env"])
    emit(event="ready", pid=os.getpid())
    while not _stop["requested"]:
        trial = sweeps.claim_trial(storage, study, sweep)
        if trial is None:
            break
        values = sweeps.suggest(trial, sweep)
        emit(event="started", trial=trial.number, params=values)
        outcome = run_trial(session, client, spec, sweep, trial.number, merge(spec["fixed"], nested(values)))
        if outcome["run_id"]:
            trial.set_user_attr(sweeps.RUN_ATTR, outcome["run_id"])
        trial.set_user_attr(sweeps.STATUS_ATTR, outcome["status"])
        if outcome["error"]:
            trial.set_user_attr(sweeps.ERROR_ATTR, outcome["error"][:2000])
        if outcome["status"] == "FINISHED":
            study.tell(trial, outcome["value"])
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        emit(event="finished", trial=trial.number, params=values, **outcome)
        if outcome["status"] == "KILLED":
            return 130
    events.close()
    return 130 if _stop["requested"] else 0


def run_trial(session: Any, client: Any, spec: dict[str, Any], sweep: Any, number: int,
              runtime_params: dict[str, Any]) -> dict[str, Any]:
    """Run the trial's pipeline; its run's id, status, objective value and error."""
    from kedro_mlflow_starter.tracking.failures import describe_error
    from kedro_mlflow_starter.tracking.run_tags import ENV_PARENT_RUN_ID, ENV_RUN_NAME
    from kedro_mlflow_starter.tracking.sweep import TRIAL_TAG

    name = f"{sweep.name} #{number}"
    os.environ[ENV_PARENT_RUN_ID] = spec["parent_run_id"]
    os.environ[ENV_RUN_NAME] = name
    status, error = "FINISHED", None
    try:
        session.run(pipeline_names=[sweep.pipeline], runtime_params=runtime_params)
    except KeyboardInterrupt:  # SIGTERM (the run's status guard) or Ctrl-C during the run
        status = "KILLED"
        _stop["requested"] = True
    except Exception as exc:  # noqa: BLE001 - a failing trial is a FAILED trial, the sweep goes on
        status, error = "FAILED", describe_error(exc)
        if _interrupted(exc):  # SIGTERM inside a library that wrapped the interruption
            status, error = "KILLED", None
            _stop["requested"] = True
    finally:
        os.environ.pop(ENV_PARENT_RUN_ID, None)
        os.environ.pop(ENV_RUN_NAME, None)
    child = _child_run(client, spec, name)
    value = None
    if child is not None:
        client.set_tag(child.info.run_id, TRIAL_TAG, str(number))
        if status == "KILLED" and child.info.status != "KILLED":
            client.set_terminated(child.info.run_id, status="KILLED")
        metric = sweep.objective.metric
        if status == "FINISHED":
            value = child.data.metrics.get(metric)
            if value is None:
                status = "FAILED"
                logged = ", ".join(sorted(child.data.metrics)) or "none"
                error = (f"the trial's run logged no metric '{metric}' (objective.metric of sweep '{sweep.name}' in "
                         f"{sweep.source}); it logged: {logged}")
    elif status == "FINISHED":
        status, error = "FAILED", "the trial's pipeline ran but opened no MLflow run (is tracking disabled for it?)"
    return {"status": status, "value": value, "error": error, "run_id": child.info.run_id if child else None}


def _interrupted(error: BaseException | None) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _child_run(client: Any, spec: dict[str, Any], name: str) -> Any | None:
    from kedro_mlflow_starter.tracking.failures import call_with_retry

    runs = call_with_retry(lambda: client.search_runs(
        [spec["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{spec['parent_run_id']}' and tags.mlflow.runName = '{name}'",
        max_results=1))
    return runs[0] if runs else None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
