"""``kedro mlflow sweep NAME``: a hyperparameter sweep as one parent run and a child run per trial.

The command validates the sweep of ``conf/<env>/sweeps.yml`` (``config/sweeps.py``) against the
project (parameters, pipeline, objective metric) before anything runs, founds, joins or resumes
the sweep's Optuna study and MLflow parent run (``tracking/sweep.py``), starts ``--jobs`` worker
processes (``framework/sweep_worker.py``) that take the queued trials one by one, shows a
progress bar with the best value so far, and closes the parent run when no trial is left.

Ctrl-C or SIGTERM stops the workers (the running trials' runs end KILLED), marks the parent
KILLED and says how to ``--resume``. Nothing here imports mlflow or optuna at module level.
"""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from kedro_mlflow_starter.errors import SweepConfigError, SweepError, TerminatedError
from kedro_mlflow_starter.framework.project_root import find_project_root

STOP_GRACE_S = 30.0


@click.command(name="sweep")
@click.argument("name", required=False)
@click.option("--list", "list_sweeps", is_flag=True, help="List the sweeps declared in conf/<env>/sweeps.yml.")
@click.option("--env", "-e", default=None, help="The Kedro environment (conf/<env>/) to run the trials in.")
@click.option("--params", "params", default="",
              help="Fixed parameter overrides for every trial, as `kedro run --params`: key=value,key2.sub=value.")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes running trials in parallel.")
@click.option("--trials", default=None, type=click.IntRange(min=1),
              help="How many trials (overrides `trials:` of the sweep; a grid runs at most its size).")
@click.option("--resume", is_flag=True, help="Continue the last KILLED sweep of this name: same parent run, same study.")
@click.option("--storage", default=None,
              help="Optuna storage shared by workers on several machines: an RDB URL (postgresql://...) or a journal "
                   "file. Default: .optuna/sweeps.journal in the project.")
def sweep(name: str | None, list_sweeps: bool, env: str | None, params: str, jobs: int, trials: int | None,
          resume: bool, storage: str | None) -> None:
    """Run the hyperparameter sweep NAME of conf/<env>/sweeps.yml: one MLflow parent run, one child run per trial."""
    root = find_project_root()
    fixed = _parse_params(params)
    project = _load_project(root, env, fixed)
    sweeps = project["sweeps"]
    if list_sweeps:
        _print_list(sweeps)
        return
    if not name:
        raise SweepConfigError(_choose(sweeps, root))
    if name not in sweeps:
        raise SweepConfigError(f"There is no sweep '{name}' in conf/*/sweeps.yml. " + _choose(sweeps, root))
    chosen = sweeps[name]
    check_sweep(chosen, project)
    Coordinator(root, env, chosen, fixed, project["config"], jobs, trials, resume, storage).run()


def _parse_params(text: str) -> dict[str, Any]:
    """``--params`` as ``kedro run`` reads it (OmegaConf's dot list: values typed as YAML)."""
    if not text.strip():
        return {}
    from omegaconf import OmegaConf

    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if "=" not in item or not item.partition("=")[0].strip()]
    if bad:
        raise click.BadParameter(f"Item `{bad[0]}` must contain a key and a value separated by `=`.",
                                 param_hint="'--params'")
    return OmegaConf.to_container(OmegaConf.from_dotlist(items))  # type: ignore[return-value]


def _load_project(root: Path, env: str | None, fixed: dict[str, Any]) -> dict[str, Any]:
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from kedro_mlflow_starter.config import load_mlflow_config
    from kedro_mlflow_starter.config.sweeps import load_sweeps

    metadata = bootstrap_project(root)
    with KedroSession.create(project_path=root, env=env, runtime_params=fixed or None) as session:
        context = session.load_context()
        config = getattr(context, "mlflow", None) or load_mlflow_config(context.config_loader, root,
                                                                         metadata.package_name)
        sweeps = load_sweeps(context.config_loader, root)
        try:
            catalog_config = dict(context.config_loader["catalog"])
        except Exception:  # noqa: BLE001 - the metric check then only sees what it can
            catalog_config = {}
        return {"config": config, "sweeps": sweeps, "params": context.params, "catalog": catalog_config,
                "pipelines": pipelines, "env": context.env}


def _choose(sweeps: dict[str, Any], root: Path) -> str:
    if not sweeps:
        return ("No sweep is declared: add one to conf/base/sweeps.yml (see the docs' Sweeps page), e.g.\n"
                "c_search:\n  pipeline: training\n  objective: {metric: test.accuracy, direction: maximize}\n"
                "  method: grid\n  params:\n    model_options.C: [0.01, 0.1, 1.0]")
    return f"Give one of the declared sweeps: {', '.join(sorted(sweeps))} (`kedro mlflow sweep --list`)."


def _print_list(sweeps: dict[str, Any]) -> None:
    if not sweeps:
        click.echo("No sweep is declared in conf/*/sweeps.yml.")
        return
    for sweep in sweeps.values():
        space = ", ".join(f"{name}: {space.describe()}" for name, space in sweep.spaces.items())
        click.echo(f"{sweep.name}: {sweep.method}, {sweep.trial_count()} trials of pipeline {sweep.pipeline}, "
                   f"{sweep.objective.direction} {sweep.objective.metric}; {space}  ({sweep.source})")


# -- validation before any trial --------------------------------------------------------------------

_METRIC_TYPES = ("MlflowMetricDataset", "MlflowMetricHistoryDataset", "MlflowMetricsHistoryDataset")


def check_sweep(sweep: Any, project: dict[str, Any]) -> None:
    """Unknown pipeline, parameter or objective metric: one error before any trial runs."""
    from kedro_mlflow_starter.config.sweeps import lookup

    where = f"{sweep.source}: {sweep.name}"
    pipelines = project["pipelines"]
    pipeline = pipelines.get(sweep.pipeline)
    if pipeline is None:
        raise SweepConfigError(f"{where}.pipeline: there is no pipeline '{sweep.pipeline}'. The project's "
                               f"pipelines: {', '.join(sorted(pipelines.keys()))}.")
    inputs = set(pipeline.inputs())
    for dotted in sweep.spaces:
        found, hint = lookup(project["params"], dotted)
        if not found:
            raise SweepConfigError(
                f"{where}.params.{dotted}: the project has no parameter '{dotted}' ({hint}). Name an existing "
                "parameter of conf/*/parameters*.yml, dotted as `kedro run --params` takes it.")
        parts = dotted.split(".")
        prefixes = {"params:" + ".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if "parameters" not in inputs and not (prefixes & inputs):
            raise SweepConfigError(
                f"{where}.params.{dotted}: no node of pipeline '{sweep.pipeline}' reads it (its parameter inputs: "
                f"{', '.join(sorted(i for i in inputs if i.startswith('params:'))) or 'none'}): every trial "
                "would be the same run.")
    if sweep.objective.check:
        _check_metric(sweep, pipeline, project["catalog"], where)


def _check_metric(sweep: Any, pipeline: Any, catalog: dict[str, Any], where: str) -> None:
    metric = sweep.objective.metric
    candidates = []
    for dataset in sorted(pipeline.all_outputs()):
        entry = catalog.get(dataset)
        kind = str(entry.get("type", "")) if isinstance(entry, dict) else ""
        short = kind.rsplit(".", 1)[-1]
        if short not in _METRIC_TYPES:
            continue
        if short == "MlflowMetricsHistoryDataset":
            prefix = entry.get("prefix", dataset)
            if prefix is None or metric.startswith(f"{prefix}."):
                return
            candidates.append(f"{prefix}.<key> (dataset {dataset})")
        else:
            key = entry.get("key") or dataset
            if metric == key:
                return
            candidates.append(f"{key} (dataset {dataset})")
    raise SweepConfigError(
        f"{where}.objective.metric: no metric dataset of pipeline '{sweep.pipeline}' logs '{metric}'. "
        f"Its metrics: {', '.join(candidates) or 'none'}. Name one of them, or set `objective.check: false` if a "
        "node logs the metric itself (mlflow.log_metric).")


# -- running the sweep --------------------------------------------------------------------------------


@dataclass
class Progress:
    done: int = 0
    failed: int = 0
    killed: int = 0
    best: tuple[float, int] | None = None
    failures: list[str] = field(default_factory=list)


class Coordinator:
    def __init__(self, root: Path, env: str | None, sweep: Any, fixed: dict[str, Any], config: Any, jobs: int,
                 trials: int | None, resume: bool, storage: str | None) -> None:
        self.root, self.env, self.sweep, self.fixed, self.config = root, env, sweep, fixed, config
        self.jobs, self.trials, self.resume, self.storage_arg = jobs, trials, resume, storage
        self.workers: list[subprocess.Popen[bytes]] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.output: dict[int, collections.deque[str]] = {}

    def run(self) -> None:
        import optuna

        from kedro_mlflow_starter.tracking import sweep as sweeps
        from kedro_mlflow_starter.tracking.client import client_for
        from kedro_mlflow_starter.tracking.experiment import ensure_experiment
        from kedro_mlflow_starter.tracking.store import check_reachable

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # the report prints the parent's URL
        config, sweep = self.config, self.sweep
        uri = config.tracking_uri()
        check_reachable(uri, config.server.connect_timeout)
        client = client_for(uri, config.registry_uri())
        experiment_id = ensure_experiment(client, config)
        storage, shown = sweeps.open_storage(self.storage_arg, self.root)
        budget = sweep.trial_count(self.trials) if (self.trials or not self.resume) else None
        previous = _install_sigterm()
        handle = None
        try:
            handle = sweeps.open_sweep(
                storage, sweep, client, experiment_id, config.experiment_name, budget=budget, resume=self.resume,
                parent_params=sweeps.parent_params(sweep, budget or 0, self.fixed,
                                                   config.tracking.params.secret_patterns),
                parent_tags=self._parent_tags(shown))
            self._announce(handle, shown)
            progress = self._run_workers(handle, storage, shown)
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
        finally:
            signal.signal(signal.SIGTERM, previous)
        self._report(handle, client, progress, status)

    # -- the parent's description -----------------------------------------------------------------

    def _options(self) -> str:
        parts = []
        if self.env:
            parts.append(f"--env={self.env}")
        if self.storage_arg:
            parts.append(f"--storage={self.storage_arg}")
        return "".join(f" {part}" for part in parts)

    def _parent_tags(self, storage_shown: str) -> dict[str, str]:
        from kedro_mlflow_starter.tracking.run_tags import run_tags

        tags = run_tags({"env": self.env, "pipeline_names": [self.sweep.pipeline]}, self.root,
                        self.config.package_name, self.config.tracking.params.secret_patterns)
        for key in ("kedro.session_id", "kedro.runner"):
            tags.pop(key, None)
        command = f"kedro mlflow sweep {self.sweep.name}{self._options()}"
        if self.fixed:
            from kedro_mlflow_starter.tracking.run_tags import kedro_command

            line = kedro_command({"runtime_params": self.fixed}, self.config.tracking.params.secret_patterns)
            command += " " + line.split(" ", 2)[2]
        tags["kedro.command"] = command
        tags["kedro_mlflow.sweep.storage"] = storage_shown
        return tags

    def _announce(self, handle: Any, shown: str) -> None:
        how = ("resumed" if handle.resumed else "started") if handle.founded else "joined"
        click.echo(f"Sweep '{self.sweep.name}' {how}: parent run {handle.parent_run_id}, Optuna study "
                   f"'{handle.study_name}' in {shown}, {handle.budget} trials, {self.jobs} worker(s).")

    # -- workers ----------------------------------------------------------------------------------

    def _spawn(self, handle: Any) -> None:
        read_fd, write_fd = os.pipe()
        spec = {
            "events_fd": write_fd, "project_path": str(self.root), "env": self.env, "sweep": self.sweep.model_dump(),
            "storage": self.storage_arg, "study_name": handle.study_name, "parent_run_id": handle.parent_run_id,
            "experiment_id": handle.experiment_id, "fixed": self.fixed,
            "tracking_uri": self.config.tracking_uri(), "registry_uri": self.config.registry_uri(),
        }
        env = dict(os.environ)
        for key in ("MLFLOW_RUN_ID", "KEDRO_MLFLOW_RUN_ID", "KEDRO_MLFLOW_PARENT_RUN_ID", "KEDRO_MLFLOW_RUN_NAME"):
            env.pop(key, None)
        process = subprocess.Popen(
            [sys.executable, "-m", "kedro_mlflow_starter.framework.sweep_worker", json.dumps(spec, default=str)],
            cwd=self.root, env=env, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        os.close(write_fd)
        self.workers.append(process)
        tail: collections.deque[str] = collections.deque(maxlen=60)
        self.output[process.pid] = tail
        threading.Thread(target=_read_events, args=(read_fd, process.pid, self.events), daemon=True).start()
        threading.Thread(target=_read_output, args=(process, tail), daemon=True).start()

    def _run_workers(self, handle: Any, storage: Any, shown: str) -> Progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        from kedro_mlflow_starter.tracking.sweep import trial_counts

        counts = trial_counts(handle.study)
        state = Progress(done=counts["completed"] + counts["failed"])
        if counts["completed"]:
            from kedro_mlflow_starter.tracking.sweep import best_trial

            best = best_trial(handle.study)
            state.best = (float(best.value), best.number)
        workers = min(self.jobs, counts["waiting"])
        for _ in range(workers):
            self._spawn(handle)
        console = Console()
        with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 console=console, transient=False) as bar:
            task = bar.add_task(self._describe(state), total=handle.budget, completed=state.done)

            def on_event(event: dict[str, Any]) -> None:
                if event.get("event") != "finished":
                    return
                status = event["status"]
                if status == "KILLED":
                    state.killed += 1
                    return
                state.done += 1
                if status == "FAILED":
                    state.failed += 1
                    line = f"trial #{event['trial']} FAILED ({_short(event['params'])}): {event.get('error')}"
                    state.failures.append(line)
                    bar.console.print(line, markup=False, highlight=False)
                elif event.get("value") is not None:
                    value = float(event["value"])
                    better = max if self.sweep.objective.direction == "maximize" else min
                    if state.best is None or better(value, state.best[0]) != state.best[0]:
                        state.best = (value, event["trial"])
                bar.update(task, completed=state.done, description=self._describe(state))

            self._drain(on_event)
        self._check_workers()
        return state

    def _drain(self, on_event: Any) -> None:
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

    def _check_workers(self) -> None:
        for process in self.workers:
            if process.returncode not in (0, None):
                time.sleep(0.2)
                tail = "\n".join(self.output.get(process.pid, []))
                raise SweepError(f"A sweep worker (pid {process.pid}) stopped with exit code {process.returncode}; "
                                 f"its last output:\n{tail}\nFix the cause, then continue with "
                                 f"`kedro mlflow sweep {self.sweep.name} --resume{self._options()}`.")

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
        text = f"{self.sweep.name}"
        if state.best is not None:
            text += f"  best {self.sweep.objective.metric} = {state.best[0]:.4g} (#{state.best[1]})"
        if state.failed:
            text += f"  {state.failed} failed"
        return text

    # -- the end ----------------------------------------------------------------------------------

    def _report(self, handle: Any, client: Any, state: Progress, status: str | None) -> None:
        import optuna
        from rich.console import Console
        from rich.table import Table

        from kedro_mlflow_starter.tracking.sweep import RUN_ATTR, trial_counts
        from kedro_mlflow_starter.tracking.ui_url import run_url, ui_base

        completed = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        reverse = self.sweep.objective.direction == "maximize"
        top = sorted(completed, key=lambda t: (-t.value if reverse else t.value, t.number))[:5]
        console = Console()
        if top:
            table = Table(title=f"Top trials of {self.sweep.name} ({self.sweep.objective.direction} "
                                f"{self.sweep.objective.metric})")
            table.add_column("trial", justify="right")
            table.add_column(self.sweep.objective.metric, justify="right")
            for name in self.sweep.spaces:
                table.add_column(name)
            table.add_column("run id", no_wrap=True)
            for trial in top:
                table.add_row(str(trial.number), f"{trial.value:.6g}",
                              *[_cell(trial.params.get(name, "")) for name in self.sweep.spaces],
                              str(trial.user_attrs.get(RUN_ATTR, "")))
            console.print(table)
        counts = trial_counts(handle.study)
        uri = self.config.tracking_uri()
        base = ui_base(uri, self.config.ui.host, self.config.ui.port)
        summary = (f"Sweep '{self.sweep.name}': {counts['completed']} trial(s) completed, {counts['failed']} failed"
                   + (f", {counts['killed']} killed earlier" if counts["killed"] else ""))
        if status is None:
            summary += "; other workers are still running trials: the last one to finish closes the parent run."
        else:
            summary += f"; parent run {status}" + ("" if uri.startswith("http") else " (`kedro mlflow ui` serves it)")
        click.echo(summary + ":")
        sys.stdout.write(f"Run:   {run_url(base, handle.experiment_id, handle.parent_run_id)}\n")
        sys.stdout.flush()
        if status == "FAILED":
            raise SweepError(f"Every trial of sweep '{self.sweep.name}' failed; the first error: "
                             f"{state.failures[0] if state.failures else 'see the child runs'}")


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items())


def _read_events(fd: int, pid: int, events: queue.Queue[dict[str, Any]]) -> None:
    with os.fdopen(fd, "r", encoding="utf-8") as stream:
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            event["pid"] = pid
            events.put(event)


def _read_output(process: subprocess.Popen[bytes], tail: collections.deque[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        tail.append(line.decode("utf-8", "replace").rstrip())


def _cell(value: Any) -> str:
    """A parameter value for the table: floats to 4 significant digits, so the run ids fit 80 columns."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _install_sigterm() -> Any:
    def on_sigterm(signum: int, frame: Any) -> None:
        raise TerminatedError("kedro mlflow sweep received SIGTERM")

    return signal.signal(signal.SIGTERM, on_sigterm)
