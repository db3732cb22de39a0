"""A sweep's two records: its Optuna study ``<experiment>:<sweep>#<k>`` (the budget's trials, queued
and claimed by workers) and its MLflow parent run; found, joined or resumed by every worker."""

from __future__ import annotations

import csv
import json
import logging
import random
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.config.redaction import is_secret, redact_uri
from kedro_mlflow_starter.config.sweeps import Sweep
from kedro_mlflow_starter.errors import SweepError
from kedro_mlflow_starter.tracking.failures import call_with_retry, retrying
from kedro_mlflow_starter.tracking.params import flatten, to_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from optuna.storages import BaseStorage

logger = logging.getLogger("kedro_mlflow_starter")

PARENT_ATTR = "kedro_mlflow.parent_run_id"
BUDGET_ATTR = "kedro_mlflow.trials"
RUN_ATTR = "kedro_mlflow.run_id"
STATUS_ATTR = "kedro_mlflow.status"  # FINISHED | FAILED | KILLED: the child run's status
ERROR_ATTR = "kedro_mlflow.error"
SWEEP_TAG = "kedro_mlflow.sweep"
TRIAL_TAG = "kedro_mlflow.sweep.trial"
DEFAULT_JOURNAL = ".optuna/sweeps.journal"
PARENT_WAIT_S = 120.0


def open_storage(storage: str | None, project_path: Path) -> tuple[BaseStorage, str]:
    """The Optuna storage and its name: an RDB URL, a journal file, by default ``.optuna/sweeps.journal``."""
    if storage and "://" in storage:
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        # workers starting together on an empty database race to create its tables
        jitter = tuple(0.5 + random.random() for _ in range(7))  # noqa: S311 - jitter, not security
        return retrying(lambda: optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True}), jitter,
                        lambda error: isinstance(error, (IntegrityError, ProgrammingError))), redact_uri(storage)
    path = Path(storage) if storage else project_path / DEFAULT_JOURNAL
    if not path.is_absolute():
        path = project_path / path
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path))), str(path)


@dataclass
class SweepHandle:
    study: optuna.Study
    study_name: str
    parent_run_id: str
    experiment_id: str
    budget: int
    founded: bool  # this process created (or reopened) the parent run
    resumed: bool = False


def _wait_for_parent(study: optuna.Study) -> str:
    """The parent run id the founder records once its trials are queued."""
    deadline = time.monotonic() + PARENT_WAIT_S
    while not study.user_attrs.get(PARENT_ATTR):
        if time.monotonic() > deadline:
            raise SweepError(
                f"The Optuna study '{study.study_name}' has no MLflow parent run after {PARENT_WAIT_S:.0f} s: the "
                "process that founded it probably died. Start the sweep again (a new study is made) or pass --resume.")
        time.sleep(0.5)
    return study.user_attrs[PARENT_ATTR]


def _joined(study: optuna.Study, name: str, experiment_id: str) -> SweepHandle:
    return SweepHandle(study, name, _wait_for_parent(study), experiment_id, int(study.user_attrs[BUDGET_ATTR]),
                       founded=False)


def open_sweep(  # noqa: PLR0913
    storage: BaseStorage,
    sweep: Sweep,
    client: MlflowClient,
    experiment_id: str,
    experiment_name: str,
    *,
    budget: int | None,
    resume: bool,
    parent_params: dict[str, str],
    parent_tags: dict[str, str],
) -> SweepHandle:
    """Found (the storage's unique study name makes one caller the founder), join or ``--resume`` the
    sweep's study and parent run."""
    from mlflow.entities import Param, RunStatus

    prefix = f"{experiment_name}:{sweep.name}#"
    generations = sorted(int(m.group(1)) for m in (re.fullmatch(re.escape(prefix) + r"(\d+)", name)
                                                   for name in optuna.get_all_study_names(storage)) if m)
    if generations:
        name = f"{prefix}{generations[-1]}"
        study = optuna.load_study(study_name=name, storage=storage)
        parent = _wait_for_parent(study)
        status = call_with_retry(lambda: client.get_run(parent)).info.status
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if status == "RUNNING" and (waiting or resume):  # another process is on it: cooperate
            return _joined(study, name, experiment_id)
        if resume:
            if status == "FINISHED":
                raise SweepError(
                    f"Sweep '{sweep.name}' has nothing to resume: its last run (parent run {parent}, study '{name}') "
                    "FINISHED. Run `kedro mlflow sweep " + sweep.name + "` without --resume to start a new one.")
            budget = int(study.user_attrs[BUDGET_ATTR]) if budget is None else budget
            study.set_user_attr(BUDGET_ATTR, budget)
            requeue(storage, study, sweep, budget)
            call_with_retry(lambda: client.update_run(parent, status=RunStatus.to_string(RunStatus.RUNNING)))
            call_with_retry(lambda: client.set_tag(parent, "kedro_mlflow.sweep.resumed", datetime.now().isoformat(
                timespec="seconds")))
            return SweepHandle(study, name, parent, experiment_id, budget, founded=True, resumed=True)
    elif resume:
        raise SweepError(f"Sweep '{sweep.name}' has nothing to resume: no study '{prefix}<n>' in this Optuna storage. "
                         "Run it without --resume, or give the --storage it ran with.")
    name = f"{prefix}{(generations[-1] if generations else 0) + 1}"
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction=sweep.objective.direction)
    except optuna.exceptions.DuplicatedStudyError:  # another process founded it a moment ago
        return _joined(optuna.load_study(study_name=name, storage=storage), name, experiment_id)
    study.set_user_attr(BUDGET_ATTR, budget)
    study.set_user_attr("kedro_mlflow.sweep", sweep.name)
    tags = {**parent_tags, SWEEP_TAG: sweep.name, "kedro_mlflow.sweep.study": name}
    run_name = f"{sweep.name} {datetime.now():%H:%M:%S}"
    run = call_with_retry(lambda: client.create_run(experiment_id, run_name=run_name, tags=tags))
    params = [Param(key, value) for key, value in parent_params.items()]
    call_with_retry(lambda: client.log_batch(run.info.run_id, params=params))
    requeue(storage, study, sweep, budget)
    study.set_user_attr(PARENT_ATTR, run.info.run_id)  # last: joiners wait for it
    return SweepHandle(study, name, run.info.run_id, experiment_id, budget, founded=True)


def requeue(storage: BaseStorage, study: optuna.Study, sweep: Sweep, budget: int) -> int:
    """Queue the trials still owed to the budget; trials a killed sweep left RUNNING count as killed."""
    _kill_running_trials(storage, study)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE
            or (t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR) != "KILLED")]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    owed = max(0, budget - len(done) - len(waiting))
    if sweep.method == "grid":
        def key(params: dict[str, Any]) -> str:
            return json.dumps(params, sort_keys=True, default=str)

        taken = {key(t.params) for t in done} | {key(t.system_attrs.get("fixed_params", {})) for t in waiting}
        points = [p for p in sweep.grid_points() if key(p) not in taken][:owed]
    else:
        points = [{} for _ in range(owed)]
    for point in points:
        study.enqueue_trial(point, skip_if_exists=False)
    return len(points)


def claim_trial(storage: BaseStorage, study: optuna.Study, sweep: Sweep) -> Trial | None:
    """Take one WAITING trial for this worker (None: the queue is empty). ``set_trial_state_values``
    moves it to RUNNING atomically in every storage: no trial runs twice, none beyond the budget."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = compat.optuna_trial_id(frozen)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                # before the trial samples anything; with a seed, one per trial number (the same draws on any worker)
                seed = None if sweep.seed is None else sweep.seed * 1_000_003 + frozen.number
                samplers = optuna.samplers
                study.sampler = (samplers.RandomSampler if sweep.method == "random" else samplers.TPESampler)(seed=seed)
                return Trial(study, trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def suggest(trial: Trial, sweep: Sweep) -> dict[str, Any]:
    """The trial's value of each searched parameter (a grid's trials come with theirs fixed)."""
    values = {}
    for name, space in sweep.spaces.items():
        if space.choices is not None or sweep.method == "grid":
            values[name] = trial.suggest_categorical(name, space.grid())
        elif space.integer:
            values[name] = trial.suggest_int(name, int(space.low), int(space.high), step=int(space.step or 1),
                                             log=space.log)
        else:
            values[name] = trial.suggest_float(name, space.low, space.high, step=space.step, log=space.log)
    return values


def parent_params(sweep: Sweep, budget: int, fixed: dict[str, Any], secret_patterns: list[str]) -> dict[str, str]:
    """What the parent run records about the sweep, as params."""
    params = {
        "sweep.name": sweep.name,
        "sweep.method": sweep.method,
        "sweep.pipeline": sweep.pipeline,
        "sweep.trials": str(budget),
        "sweep.objective": f"{sweep.objective.metric} ({sweep.objective.direction})",
    }
    if sweep.seed is not None:
        params["sweep.seed"] = str(sweep.seed)
    for name, space in sweep.spaces.items():
        params[f"sweep.space.{name}"] = space.describe()[:6000]
    for key, value in flatten(fixed, ".", recursive=True).items():
        params[f"sweep.fixed.{key}"] = "***" if is_secret(str(key), secret_patterns) else to_text(value)[:6000]
    return params


def mark_interrupted(handle: SweepHandle, client: MlflowClient, storage: BaseStorage) -> None:
    """After the workers were stopped: what they could not close (a worker killed hard) ends KILLED,
    the child run and the trial."""
    runs = call_with_retry(lambda: client.search_runs(
        [handle.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{handle.parent_run_id}' and "
                                              "attributes.status = 'RUNNING'", max_results=1000))
    for run in runs:
        call_with_retry(lambda run=run: client.set_terminated(run.info.run_id, status="KILLED"))
    _kill_running_trials(storage, handle.study)


def _kill_running_trials(storage: BaseStorage, study: optuna.Study) -> None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = compat.optuna_trial_id(trial)
        storage.set_trial_user_attr(trial_id, STATUS_ATTR, "KILLED")
        try:
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # its worker finished it meanwhile
            continue


def trial_counts(study: optuna.Study) -> dict[str, int]:
    counts = {"completed": 0, "failed": 0, "killed": 0, "waiting": 0, "running": 0}
    names = {TrialState.COMPLETE: "completed", TrialState.WAITING: "waiting", TrialState.RUNNING: "running"}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.FAIL:
            counts["killed" if trial.user_attrs.get(STATUS_ATTR) == "KILLED" else "failed"] += 1
        elif trial.state in names:
            counts[names[trial.state]] += 1
    return counts


def finish_sweep(handle: SweepHandle, client: MlflowClient, sweep: Sweep, interrupted: bool) -> str | None:
    """Close the parent run when no trial is left (returns its status), else None (the last worker
    closes it); interrupted, the parent is KILLED at once (the trials owed wait for ``--resume``)."""
    from mlflow.entities import Param

    counts = trial_counts(handle.study)
    _log_metrics(client, handle.parent_run_id,
                 {f"sweep.{key}_trials": counts[key] for key in ("completed", "failed", "killed")})
    if interrupted:
        call_with_retry(lambda: client.set_terminated(handle.parent_run_id, status="KILLED"))
        return "KILLED"
    if counts["waiting"] or counts["running"]:
        return None
    best = best_trial(handle.study)
    if best is not None:
        params = [Param(f"best.{name}", to_text(value)) for name, value in best.params.items()]
        params += [Param("best.trial", str(best.number)), Param("best.run_id", str(best.user_attrs.get(RUN_ATTR, "")))]
        try:
            call_with_retry(lambda: client.log_batch(handle.parent_run_id, params=params))
        except Exception as error:  # noqa: BLE001 - a best already recorded by a resumed sweep's earlier end
            logger.debug("MLflow: best.* params not logged: %s", error)
        _log_metrics(client, handle.parent_run_id, {f"best.{sweep.objective.metric}": float(best.value)})
        if sweep.best_alias:
            _alias_best_model(client, handle.parent_run_id, best.user_attrs.get(RUN_ATTR), sweep.best_alias)
    log_sweep_artifacts(handle, client, sweep)
    status = "FINISHED" if counts["completed"] else "FAILED"
    call_with_retry(lambda: client.set_terminated(handle.parent_run_id, status=status))
    return status


def _alias_best_model(client: MlflowClient, parent_run_id: str, run_id: str | None, alias: str) -> None:
    """Point ``alias`` at every registered model version the best trial's run created."""
    if not run_id:
        return
    versions = call_with_retry(lambda: client.search_model_versions(f"run_id = '{run_id}'"))
    if not versions:
        logger.warning("MLflow: best_alias '%s' not set: the best trial's run (%s) registered no model version "
                       "(give the pipeline model a registered_model_name).", alias, run_id)
        return
    for version in versions:
        call_with_retry(lambda v=version: client.set_registered_model_alias(v.name, alias, v.version))
    shown = ", ".join(f"{v.name} v{v.version}" for v in versions)
    call_with_retry(lambda: client.set_tag(parent_run_id, f"best.model_alias.{alias}", shown))
    logger.info("MLflow: alias '%s' now points at %s (the best trial's model).", alias, shown)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        return None
    if study.direction == optuna.study.StudyDirection.MAXIMIZE:
        return max(completed, key=lambda t: (t.value, -t.number))
    return min(completed, key=lambda t: (t.value, t.number))


def _log_metrics(client: MlflowClient, run_id: str, values: dict[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in values.items()]
    if metrics:
        call_with_retry(lambda: client.log_batch(run_id, metrics=metrics))


def trial_rows(study: optuna.Study, client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """One row per trial: number, status, run id, objective value, params, then the child's metrics."""
    children = {run.info.run_id: run for run in call_with_retry(lambda: client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=5000))}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        run_id = trial.user_attrs.get(RUN_ATTR, "")
        status = trial.user_attrs.get(STATUS_ATTR) or {"COMPLETE": "FINISHED"}.get(trial.state.name, trial.state.name)
        row: dict[str, Any] = {"trial": trial.number, "status": status, "run_id": run_id,
                               "value": trial.value if trial.value is not None else ""}
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        if run_id in children:
            row.update({f"metrics.{k}": v for k, v in sorted(children[run_id].data.metrics.items())})
        rows.append(row)
    return rows


def log_sweep_artifacts(handle: SweepHandle, client: MlflowClient, sweep: Sweep) -> None:
    """``sweep/trials.csv`` and the plots (objective per trial, parameters) on the parent run."""
    rows = trial_rows(handle.study, client, handle.experiment_id, handle.parent_run_id)
    with tempfile.TemporaryDirectory(prefix="kedro-mlflow-sweep-") as folder:
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        with open(Path(folder, "trials.csv"), "w", newline="", encoding="utf-8") as handle_csv:
            writer = csv.DictWriter(handle_csv, fieldnames=columns or ["trial"])
            writer.writeheader()
            writer.writerows(rows)
        _plots(handle.study, sweep, Path(folder))
        call_with_retry(lambda: client.log_artifacts(handle.parent_run_id, folder, "sweep"))


def _plots(study: optuna.Study, sweep: Sweep, folder: Path) -> None:
    """Optuna's matplotlib plots: the objective per trial, and the parameters against it."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as optuna_plots
    except ImportError:
        logger.warning("MLflow: the sweep's plots were not made: matplotlib is not installed "
                       "(pip install matplotlib).")
        return
    target = sweep.objective.metric
    plots = {"optimization_history.png": lambda: optuna_plots.plot_optimization_history(study, target_name=target)}
    if len(sweep.spaces) > 1:
        plots["parallel_coordinate.png"] = lambda: optuna_plots.plot_parallel_coordinate(study, target_name=target)
    else:
        plots["slice.png"] = lambda: optuna_plots.plot_slice(study, target_name=target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are marked experimental
        for file_name, make in plots.items():
            try:
                axes = make()
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                figure.set_size_inches(8, 5)
                figure.savefig(folder / file_name, dpi=100, bbox_inches="tight")
                plt.close(figure)
            except Exception as error:  # noqa: BLE001 - a plot is a convenience, never a failed sweep
                logger.warning("MLflow: the sweep plot %s was not made: %s", file_name, error)
