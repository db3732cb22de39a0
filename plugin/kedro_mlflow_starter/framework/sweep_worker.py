"""One worker process of ``kedro mlflow sweep``: runs queued trials (each one run of a ``KedroServiceSession``) until
none is left, each finished one a JSON line on ``events_fd``; SIGTERM kills the trial, or stops the worker."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.framework.session import KedroServiceSession
from kedro.framework.startup import bootstrap_project

from kedro_mlflow_starter.config.sweeps import Sweep, merge, nested
from kedro_mlflow_starter.framework.trial_outputs import ENV_TRIAL_FOLDER
from kedro_mlflow_starter.tracking import sweep as sweeps
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.failures import call_with_retry, describe_error
from kedro_mlflow_starter.tracking.run_tags import ENV_PARENT_RUN_ID, ENV_RUN_NAME

if TYPE_CHECKING:
    from mlflow import MlflowClient

_stop = {"requested": False}


def _on_sigterm(signum: int, frame: object) -> None:  # between trials: finish the bookkeeping, then stop
    _stop["requested"] = True


def main(argv: list[str]) -> int:
    import optuna

    spec = json.loads(argv[1])
    events = os.fdopen(spec["events_fd"], "w", buffering=1, encoding="utf-8")  # line-buffered: one line per trial
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    project_path = Path(spec["project_path"])
    os.chdir(project_path)
    bootstrap_project(project_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = Sweep.model_validate(spec["sweep"])
    storage, _ = sweeps.open_storage(spec["storage"], project_path)
    study = optuna.load_study(study_name=spec["study_name"], storage=storage)
    client = client_for(spec["tracking_uri"], spec["registry_uri"])
    session = KedroServiceSession.create(project_path=project_path, env=spec["env"])
    while not _stop["requested"]:
        trial = sweeps.claim_trial(storage, study, sweep)
        if trial is None:
            break
        values = sweeps.suggest(trial, sweep)
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
        events.write(json.dumps({"trial": trial.number, "params": values, **outcome}, default=str) + "\n")
        if outcome["status"] == "KILLED":
            return 130
    events.close()
    return 130 if _stop["requested"] else 0


def run_trial(session: KedroServiceSession, client: MlflowClient, spec: dict[str, Any], sweep: Sweep,  # noqa: PLR0913
              number: int, runtime_params: dict[str, Any]) -> dict[str, Any]:
    """Run the trial's pipeline; its run's id, status, objective value and error."""
    name = f"{sweep.name} #{number}"
    os.environ.update({ENV_PARENT_RUN_ID: spec["parent_run_id"], ENV_RUN_NAME: name})
    status, error = "FINISHED", None
    try:
        with tempfile.TemporaryDirectory(prefix=f"kedro-mlflow-trial-{number}-") as folder:
            os.environ[ENV_TRIAL_FOLDER] = folder  # the files the trial's pipeline writes (framework/trial_outputs.py)
            session.run(pipeline_names=[sweep.pipeline], runtime_params=runtime_params)
    except KeyboardInterrupt:  # SIGTERM (the run's status guard) or Ctrl-C during the run
        status = "KILLED"
    except Exception as exc:  # noqa: BLE001 - a failing trial is a FAILED trial, the sweep goes on
        status, error = "FAILED", describe_error(exc)
        if _interrupted(exc):  # SIGTERM inside a library that wrapped the interruption
            status, error = "KILLED", None
    finally:
        os.environ.pop(ENV_PARENT_RUN_ID, None)
        os.environ.pop(ENV_RUN_NAME, None)
        os.environ.pop(ENV_TRIAL_FOLDER, None)
    _stop["requested"] |= status == "KILLED"
    runs = call_with_retry(lambda: client.search_runs(
        [spec["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{spec['parent_run_id']}' and tags.mlflow.runName = '{name}'",
        max_results=1))
    child = runs[0] if runs else None
    value = None
    if child is not None:
        client.set_tag(child.info.run_id, sweeps.TRIAL_TAG, str(number))
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))
