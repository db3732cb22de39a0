"""``kedro mlflow sweep NAME``: check the sweep of ``conf/<env>/sweeps.yml``, open its Optuna study and parent run,
run the trials in ``--jobs`` worker processes (``sweep_worker.py``) with a progress bar, then close the parent run."""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from kedro.framework.project import pipelines

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.config.sweeps import load_sweeps, lookup
from kedro_mlflow_starter.errors import SweepConfigError, SweepError
from kedro_mlflow_starter.framework.project_session import project_metadata, project_session
from kedro_mlflow_starter.kedro_names import is_parameter, parameter_key
from kedro_mlflow_starter.tracking import sweep as sweeps
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.lineage import METRIC_TYPES
from kedro_mlflow_starter.tracking.experiment import ensure_experiment
from kedro_mlflow_starter.tracking.run_tags import kedro_command, run_tags
from kedro_mlflow_starter.tracking.status_guard import signals_interrupt
from kedro_mlflow_starter.tracking.store import check_reachable
from kedro_mlflow_starter.tracking.ui_url import run_url, ui_base

if TYPE_CHECKING:
    from kedro.framework.context import KedroContext
    from kedro.framework.startup import ProjectMetadata
    from kedro.pipeline import Pipeline

    from kedro_mlflow_starter.config import MlflowConfig
    from kedro_mlflow_starter.config.sweeps import Sweep

STOP_GRACE_S = 30.0


@click.command(name="sweep")
@click.argument("name", required=False)
@click.option("--list", "list_sweeps", is_flag=True, help="List the sweeps declared in conf/<env>/sweeps.yml.")
@click.option("--env", "-e", default=None, help="The Kedro environment (conf/<env>/) to run the trials in.")
@click.option("--params", "params", default="", callback=compat.split_params,
              help="Fixed parameter overrides for every trial, as `kedro run --params`: key=value,key2.sub=value.")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes running trials in parallel.")
@click.option("--trials", default=None, type=click.IntRange(min=1),
              help="How many trials (overrides `trials:` of the sweep; a grid runs at most its size).")
@click.option("--resume", is_flag=True, help="Continue the last KILLED sweep of this name: same parent run, same study.")
@click.option("--storage", default=None,
              help="Optuna storage shared by workers on several machines: an RDB URL (postgresql://...) or a journal "
                   "file. Default: .optuna/sweeps.journal in the project.")
@click.pass_obj
def sweep(metadata: ProjectMetadata | None, name: str | None, list_sweeps: bool, env: str | None,  # noqa: PLR0913
          params: dict[str, Any], jobs: int, trials: int | None, resume: bool, storage: str | None) -> None:
    """Run the hyperparameter sweep NAME of conf/<env>/sweeps.yml: one MLflow parent run, one child run per trial."""
    metadata = project_metadata(metadata)
    with project_session(metadata, env, runtime_params=params) as (_, context, config):
        declared = load_sweeps(context.config_loader, metadata.project_path)
        if list_sweeps:
            if not declared:
                click.echo("No sweep is declared in conf/*/sweeps.yml.")
            for each in declared.values():
                space = ", ".join(f"{key}: {space.describe()}" for key, space in each.spaces.items())
                click.echo(f"{each.name}: {each.method}, {each.trial_count()} trials of pipeline {each.pipeline}, "
                           f"{each.objective.direction} {each.objective.metric}; {space}  ({each.source})")
            return
        if name not in declared:
            choose = (f"Give one of the declared sweeps: {', '.join(sorted(declared))} (`kedro mlflow sweep --list`)."
                      if declared else
                      "No sweep is declared: add one to conf/base/sweeps.yml (see the docs' Sweeps page), e.g.\n"
                      "c_search:\n  pipeline: training\n  objective: {metric: test.accuracy, direction: maximize}\n"
                      "  method: grid\n  params:\n    model_options.C: [0.01, 0.1, 1.0]")
            raise SweepConfigError(f"There is no sweep '{name}' in conf/*/sweeps.yml. {choose}" if name else choose)
        check_sweep(declared[name], context)
    Coordinator(metadata.project_path, env, declared[name], params, config, jobs, trials, resume, storage).run()


def check_sweep(sweep: Sweep, context: KedroContext) -> None:
    """Unknown pipeline, parameter or objective metric: one error before any trial runs."""
    where = f"{sweep.source}: {sweep.name}"
    pipeline = pipelines.get(sweep.pipeline)
    if pipeline is None:
        raise SweepConfigError(f"{where}.pipeline: there is no pipeline '{sweep.pipeline}'. The project's "
                               f"pipelines: {', '.join(sorted(pipelines.keys()))}.")
    inputs = pipeline.inputs()
    read = {parameter_key(name) for name in inputs if is_parameter(name)}
    for dotted in sweep.spaces:
        found, hint = lookup(context.params, dotted)
        if not found:
            raise SweepConfigError(
                f"{where}.params.{dotted}: the project has no parameter '{dotted}' ({hint}). Name an existing "
                "parameter of conf/*/parameters*.yml, dotted as `kedro run --params` takes it.")
        if "parameters" not in inputs and not any(dotted == key or dotted.startswith(f"{key}.") for key in read):
            raise SweepConfigError(
                f"{where}.params.{dotted}: no node of pipeline '{sweep.pipeline}' reads it (its parameter inputs: "
                f"{', '.join(sorted(name for name in inputs if is_parameter(name))) or 'none'}): every trial "
                "would be the same run.")
    if sweep.objective.check:
        try:
            catalog = dict(context.config_loader["catalog"])
        except Exception:  # noqa: BLE001 - the metric check then only sees what it can
            catalog = {}
        _check_metric(sweep, pipeline, catalog, where)


def _check_metric(sweep: Sweep, pipeline: Pipeline, catalog: Mapping[str, Any], where: str) -> None:
    metric, candidates = sweep.objective.metric, []
    for dataset in sorted(pipeline.all_outputs()):
        entry = catalog.get(dataset)
        kind = (str(entry.get("type", "")) if isinstance(entry, dict) else "").rsplit(".", 1)[-1]
        if kind == "MlflowMetricsHistoryDataset":
            prefix = entry.get("prefix", dataset)
            if prefix is None or metric.startswith(f"{prefix}."):
                return
            candidates.append(f"{prefix}.<key> (dataset {dataset})")
        elif kind in METRIC_TYPES:
            key = entry.get("key") or dataset
            if metric == key:
                return
            candidates.append(f"{key} (dataset {dataset})")
    raise SweepConfigError(
        f"{where}.objective.metric: no metric dataset of pipeline '{sweep.pipeline}' logs '{metric}'. "
        f"Its metrics: {', '.join(candidates) or 'none'}. Name one of them, or set `objective.check: false` if a "
        "node logs the metric itself (mlflow.log_metric).")


@dataclass
class Progress:
    done: int = 0
    failed: int = 0
    killed: int = 0
    best: tuple[float, int] | None = None
    failures: list[str] = field(default_factory=list)


class Coordinator:
    """Founds, joins or resumes the sweep, runs its workers, and reports; Ctrl-C or SIGTERM ends it KILLED."""

    def __init__(self, root: Path, env: str | None, sweep: Sweep, fixed: dict[str, Any],  # noqa: PLR0913
                 config: MlflowConfig, jobs: int, trials: int | None, resume: bool, storage: str | None) -> None:
        self.root, self.env, self.sweep, self.fixed, self.config = root, env, sweep, fixed, config
        self.jobs, self.trials, self.resume, self.storage_arg = jobs, trials, resume, storage
        self.workers: list[subprocess.Popen[bytes]] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.output: dict[int, collections.deque[str]] = {}

    def run(self) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # the report prints the parent's URL
        config, sweep = self.config, self.sweep
        check_reachable(config.tracking_uri(), config.server.connect_timeout)
        client = client_for(config.tracking_uri(), config.registry_uri())
        experiment_id = ensure_experiment(client, config)
        storage, shown = sweeps.open_storage(self.storage_arg, self.root)
        budget = sweep.trial_count(self.trials) if (self.trials or not self.resume) else None
        with signals_interrupt("kedro mlflow sweep"):
            handle = None
            try:
                handle = sweeps.open_sweep(
                    storage, sweep, client, experiment_id, config.experiment_name, budget=budget, resume=self.resume,
                    parent_params=sweeps.parent_params(sweep, budget or 0, self.fixed,
                                                       config.tracking.params.secret_patterns),
                    parent_tags=self._parent_tags(shown))
                how = ("resumed" if handle.resumed else "started") if handle.founded else "joined"
                click.echo(f"Sweep '{sweep.name}' {how}: parent run {handle.parent_run_id},\n"
                           f"{handle.budget} trials, {self.jobs} worker(s), Optuna study '{handle.study_name}' in\n"
                           f"{shown}")
                progress = self._run_workers(handle)
                status = sweeps.finish_sweep(handle, client, sweep, interrupted=False)
            except KeyboardInterrupt:
                self._stop_workers()
                if handle is not None:
                    self._drain(None)
                    sweeps.mark_interrupted(handle, client, storage)
                    sweeps.finish_sweep(handle, client, sweep, interrupted=True)
                    click.echo(f"\nSweep '{sweep.name}' interrupted: its running trials and parent run "
                               f"{handle.parent_run_id} are KILLED. Continue it with: kedro mlflow sweep {sweep.name} "
                               f"--resume{self._options()}", err=True)
                sys.exit(130)
            except Exception:  # a worker died, the store went away: the parent must not stay RUNNING
                if handle is not None:
                    self._stop_workers()
                    try:
                        sweeps.mark_interrupted(handle, client, storage)
                        client.set_terminated(handle.parent_run_id, status="FAILED")
                    except Exception as error:  # noqa: BLE001 - report the first problem, not this one
                        click.echo(f"Could not mark parent run {handle.parent_run_id} FAILED: {error}", err=True)
                raise
        self._report(handle, progress, status)

    def _options(self, redact: bool = False) -> str:
        """The command's options as typed (``redact``: the storage URL without its password, for MLflow)."""
        storage = redact_uri(self.storage_arg) if redact and self.storage_arg else self.storage_arg
        options = (("env", self.env), ("storage", storage), ("trials", self.trials),
                   ("jobs", self.jobs if self.jobs > 1 else None))
        return "".join(f" --{key}={value}" for key, value in options if value)

    def _parent_tags(self, storage_shown: str) -> dict[str, str]:
        secret_patterns = self.config.tracking.params.secret_patterns
        tags = run_tags({"env": self.env, "pipeline_names": [self.sweep.pipeline]}, self.root,
                        self.config.package_name, secret_patterns)
        for key in ("kedro.session_id", "kedro.runner"):
            tags.pop(key, None)
        command = f"kedro mlflow sweep {self.sweep.name}{self._options(redact=True)}"
        if self.fixed:
            command += " " + kedro_command({"runtime_params": self.fixed}, secret_patterns).split(" ", 2)[2]
        tags["kedro.command"] = command
        tags["kedro_mlflow.sweep.storage"] = storage_shown
        return tags

    def _spawn(self, handle: sweeps.SweepHandle) -> None:
        read_fd, write_fd = os.pipe()
        spec = {
            "events_fd": write_fd, "project_path": str(self.root), "env": self.env, "sweep": self.sweep.model_dump(),
            "storage": self.storage_arg, "study_name": handle.study_name, "parent_run_id": handle.parent_run_id,
            "experiment_id": handle.experiment_id, "fixed": self.fixed,
            "tracking_uri": self.config.tracking_uri(), "registry_uri": self.config.registry_uri(),
        }
        env = {key: value for key, value in os.environ.items() if key not in
               ("MLFLOW_RUN_ID", "KEDRO_MLFLOW_RUN_ID", "KEDRO_MLFLOW_PARENT_RUN_ID", "KEDRO_MLFLOW_RUN_NAME")}
        process = subprocess.Popen(
            [sys.executable, "-m", "kedro_mlflow_starter.framework.sweep_worker", json.dumps(spec, default=str)],
            cwd=self.root, env=env, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        os.close(write_fd)
        self.workers.append(process)
        tail = self.output[process.pid] = collections.deque(maxlen=60)
        threading.Thread(target=_read_events, args=(read_fd, self.events), daemon=True).start()
        threading.Thread(target=lambda: tail.extend(line.decode("utf-8", "replace").rstrip()
                                                    for line in process.stdout or ()), daemon=True).start()

    def _run_workers(self, handle: sweeps.SweepHandle) -> Progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        counts = sweeps.trial_counts(handle.study)
        state = Progress(done=counts["completed"] + counts["failed"])
        if counts["completed"]:
            best = sweeps.best_trial(handle.study)
            state.best = (float(best.value), best.number)
        for _ in range(min(self.jobs, counts["waiting"])):
            self._spawn(handle)
        better = max if self.sweep.objective.direction == "maximize" else min
        with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 console=Console()) as bar:
            task = bar.add_task(self._describe(state), total=handle.budget, completed=state.done)

            def on_event(event: dict[str, Any]) -> None:  # a trial finished
                if event["status"] == "KILLED":
                    state.killed += 1
                    return
                state.done += 1
                if event["status"] == "FAILED":
                    state.failed += 1
                    values = ", ".join(f"{key}={value}" for key, value in event["params"].items())
                    line = f"trial #{event['trial']} FAILED ({values}): {event.get('error')}"
                    state.failures.append(line)
                    bar.console.print(line, markup=False, highlight=False)
                elif event.get("value") is not None:
                    value = float(event["value"])
                    if state.best is None or better(value, state.best[0]) != state.best[0]:
                        state.best = (value, event["trial"])
                bar.update(task, completed=state.done, description=self._describe(state))

            self._drain(on_event)
        for process in self.workers:
            if process.returncode not in (0, None):
                time.sleep(0.2)
                tail = "\n".join(self.output.get(process.pid, []))
                raise SweepError(f"A sweep worker (pid {process.pid}) stopped with exit code {process.returncode}; "
                                 f"its last output:\n{tail}\nFix the cause, then continue with "
                                 f"`kedro mlflow sweep {self.sweep.name} --resume{self._options()}`.")
        return state

    def _drain(self, on_event: Callable[[dict[str, Any]], None] | None) -> None:
        """Events until every worker has exited."""
        while True:
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                if all(process.poll() is not None for process in self.workers) and self.events.empty():
                    time.sleep(0.1)  # the reader threads' last lines
                    if self.events.empty():
                        return
                continue
            if on_event is not None:
                on_event(event)

    def _stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.workers:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _describe(self, state: Progress) -> str:
        text = self.sweep.name
        if state.best is not None:
            text += f"  best {self.sweep.objective.metric} = {state.best[0]:.4g} (#{state.best[1]})"
        return text + (f"  {state.failed} failed" if state.failed else "")

    def _report(self, handle: sweeps.SweepHandle, state: Progress, status: str | None) -> None:
        import optuna
        from rich.console import Console
        from rich.table import Table

        objective = self.sweep.objective
        completed = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        sign = -1 if objective.direction == "maximize" else 1
        top = sorted(completed, key=lambda t: (sign * t.value, t.number))[:5]
        if top:
            table = Table(title=f"Top trials of {self.sweep.name} ({objective.direction} {objective.metric})")
            for column in ("trial", objective.metric):  # long names fold onto a second line, never cut
                table.add_column(column, justify="right", overflow="fold")
            for name in self.sweep.spaces:
                table.add_column(name, overflow="fold")
            table.add_column("run id", no_wrap=True)
            for trial in top:  # floats to 4 significant digits, so that the run ids fit 80 columns
                table.add_row(str(trial.number), f"{trial.value:.6g}",
                              *[f"{v:.4g}" if isinstance(v := trial.params.get(name, ""), float) else str(v)
                                for name in self.sweep.spaces],
                              str(trial.user_attrs.get(sweeps.RUN_ATTR, "")))
            Console().print(table)
        counts = sweeps.trial_counts(handle.study)
        uri = self.config.tracking_uri()
        summary = (f"Sweep '{self.sweep.name}': {counts['completed']} trial(s) completed, {counts['failed']} failed"
                   + (f", {counts['killed']} killed earlier" if counts["killed"] else ""))
        if status is None:
            summary += "; other workers are still running trials: the last one to finish closes the parent run."
        else:
            summary += f"; parent run {status}" + ("" if uri.startswith("http") else "\n(`kedro mlflow ui` serves it)")
        click.echo(summary + ":")
        base = ui_base(uri, self.config.ui.host, self.config.ui.port)
        sys.stdout.write(f"Run:   {run_url(base, handle.experiment_id, handle.parent_run_id)}\n")
        sys.stdout.flush()
        if status == "FAILED":
            raise SweepError(f"Every trial of sweep '{self.sweep.name}' failed; the first error: "
                             f"{state.failures[0] if state.failures else 'see the child runs'}")


def _read_events(fd: int, events: queue.Queue[dict[str, Any]]) -> None:
    with os.fdopen(fd, "r", encoding="utf-8") as stream:
        for line in stream:
            try:
                events.put(json.loads(line))
            except ValueError:
                continue
