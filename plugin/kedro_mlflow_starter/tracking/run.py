"""``TrackedRun``: the one owner of the MLflow run a Kedro pipeline run logs into, from its opening
to its honest end, with the event methods the hook calls in the order of a ``kedro run``."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from datetime import datetime
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.errors import (
    RunNotFoundError,
    RunNotJoinableError,
    TrackingIncompleteError,
    TrackingStoreUnreachableError,
)
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.current import PublishedEnvironment, leave_all_node_runs, user_run_id
from kedro_mlflow_starter.tracking.experiment import ensure_experiment
from kedro_mlflow_starter.tracking.failures import (
    call_with_retry,
    describe_error,
    describe_failures,
    is_transient,
    outage_policy,
    read_failures,
)
from kedro_mlflow_starter.tracking.overwritten_files import OVERWRITTEN_TAG, OverwriteWatch
from kedro_mlflow_starter.tracking.params import PreparedParams
from kedro_mlflow_starter.tracking.pending_models import fail_pending_models
from kedro_mlflow_starter.tracking.replay import has_pending, pending_dir, replay_command, seal
from kedro_mlflow_starter.tracking.run_roles import GroupTask, JoinedRun, OwnedRun
from kedro_mlflow_starter.tracking import orchestrated
from kedro_mlflow_starter.tracking.run_tags import ENV_RUN_NAME, run_tags
from kedro_mlflow_starter.tracking.status_guard import StatusGuard
from kedro_mlflow_starter.tracking.user_run import config_for_user_run
from kedro_mlflow_starter.tracking.store import check_reachable, file_store_env, http_retry_env
from kedro_mlflow_starter.tracking.ui_url import run_url, ui_base

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities import Run
    from mlflow import MlflowClient

    from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder
    from kedro_mlflow_starter.tracking.run_roles import GroupClose

logger = logging.getLogger("kedro_mlflow_starter")


class TrackedRun:
    """An open MLflow run of one Kedro pipeline run, addressed by id (``open``, ``create`` or ``attach``); its
    ``role`` (tracking/run_roles.py) says what this process is to the run."""

    def __init__(self, config: MlflowConfig, client: MlflowClient, run: Run, experiment_name: str,
                 role: OwnedRun | GroupClose, environment: PublishedEnvironment | None = None) -> None:
        self.config = config
        self.client = client
        self.run_id: str = run.info.run_id
        self.run_name: str = run.info.run_name
        self.experiment_id: str = run.info.experiment_id
        self.start_time: int = run.info.start_time
        self.tags: dict[str, str] = dict(run.data.tags)
        self.experiment_name = experiment_name
        self.role = role
        self.lineage: LineageRecorder | None = None
        self.watch: OverwriteWatch | None = None  # files another process rewrote under this run
        self.log_model: Callable[[TrackedRun], str | None] | None = None  # the pipeline model, when one is logged
        self._environment = environment or PublishedEnvironment()
        self._guard: StatusGuard | None = None
        self._failure_log: str | None = None
        self._pending: str | None = None  # tracking/replay.py: what an outage kept for `kedro mlflow run replay`
        self._earned: str | None = None
        self.is_open = True

    @property
    def owned(self) -> bool:
        return self.role.owned

    @property
    def is_task(self) -> bool:
        """True when this process is one task of a group run (`kedro mlflow run open`)."""
        return isinstance(self.role, GroupTask)

    @property
    def shared(self) -> bool:
        """True when the run may already hold what an earlier attempt logged: a run joined as
        one task of a group run (the orchestrator may retry the task), or resumed by id."""
        return not self.owned or bool(self.config.tracking.run.id)

    @classmethod
    def open(  # noqa: PLR0913
        cls,
        config: MlflowConfig,
        run_params: Mapping[str, Any],
        params: PreparedParams,
        run_name: str | Callable[[datetime], str],
        nodes: Sequence[str] = (),
    ) -> TrackedRun | None:
        """Open (or join, or resume) the run and log its params and tags in one batch; None when the store
        is unreachable and ``server.on_unreachable`` is ``run_untracked``. ``run_name`` may be a function of
        the run's start time; ``nodes``: what this kedro run runs (a task of a group run reports them)."""
        config = config_for_user_run(config)  # a run the user opened in another store is joined there
        uri = config.tracking_uri()
        environment = PublishedEnvironment()
        environment.set({**http_retry_env(), **file_store_env(uri)})
        try:
            # an unreachable store is our health check's verdict, or an outage
            with outage_policy(None, transient=lambda error: isinstance(error, TrackingStoreUnreachableError)
                               or is_transient(error)) as outage:
                check_reachable(uri, config.server.connect_timeout)
                client = client_for(uri, config.registry_uri())
                experiment_id = ensure_experiment(client, config)
                tags = run_tags(run_params, config.project_path, config.package_name,
                                config.tracking.params.secret_patterns)
                tracked = cls._start_or_join(config, client, experiment_id, run_name, tags, environment,
                                             run_params, nodes, params.params)
                tracked.role.join(tracked, params, tags)
        except BaseException:
            environment.restore()
            raise
        if outage.error is not None:
            environment.restore()
            unreachable = outage.error if isinstance(outage.error, TrackingStoreUnreachableError) else \
                TrackingStoreUnreachableError(uri, f"{type(outage.error).__name__}: {outage.error}")
            if config.server.on_unreachable == "run_untracked":
                logger.warning(unreachable.untracked_notice())
                return None
            raise unreachable from None
        for notice in params.notices():
            logger.warning(notice)
        logger.info("MLflow run '%s' (%s) %s in experiment '%s' at %s.", tracked.run_name, tracked.run_id,
                    "started" if tracked.owned else "joined", tracked.experiment_name, redact_uri(uri))
        return tracked

    @classmethod
    def create(cls, config: MlflowConfig, run_name: str, tags: Mapping[str, str]) -> TrackedRun:
        """A new run of the configured experiment, owned by the caller (e.g. ``kedro mlflow modelify``)."""
        client = client_for(config.tracking_uri(), config.registry_uri())
        experiment_id = ensure_experiment(client, config)
        run = call_with_retry(lambda: client.create_run(experiment_id, run_name=run_name, tags=dict(tags)))
        return cls(config, client, run, config.experiment_name, OwnedRun())

    @classmethod
    def attach(cls, config: MlflowConfig, run_id: str, role: OwnedRun | GroupClose | None = None) -> TrackedRun:
        """An existing run, by id: logged into and left as it is, unless ``role`` says otherwise."""
        client = client_for(config.tracking_uri(), config.registry_uri())
        run = _existing_run(client, run_id, config.tracking_uri(),
                            "Check the id (`kedro mlflow ui`), or leave out --run-id to log into a new run.")
        experiment = client.get_experiment(run.info.experiment_id)
        return cls(config, client, run, experiment.name, role or JoinedRun())

    @classmethod
    def _start_or_join(  # noqa: PLR0913
        cls,
        config: MlflowConfig,
        client: MlflowClient,
        experiment_id: str,
        run_name: str | Callable[[datetime], str],
        tags: dict[str, str],
        environment: PublishedEnvironment,
        run_params: Mapping[str, Any],
        nodes: Sequence[str],
        params: Mapping[str, str],
    ) -> TrackedRun:
        from mlflow.entities import RunStatus

        resume_id = config.tracking.run.id
        # a run something else already opened: handed down by env, or active in this process
        nested = config.tracking.run.nested and resume_id is None
        joined = (os.environ.get("MLFLOW_RUN_ID") or user_run_id()) if nested else None
        if resume_id or joined:
            source = ("It is resumed by `tracking.run.id` in mlflow.yml: remove that key to log a new run"
                      if resume_id else "It was handed down by MLFLOW_RUN_ID: unset it to log a new run"
                      if os.environ.get("MLFLOW_RUN_ID") else "It is the run your code opened with "
                      "mlflow.start_run(): end it first, or set `tracking.run.nested: false` to log a new run")
            run = _existing_run(client, resume_id or joined, config.tracking_uri(),
                                f"{source}, or give the id of a run of this store (`kedro mlflow ui` lists them).")
            if joined and run.info.status != "RUNNING":  # logging into it would set a closed run RUNNING again
                raise RunNotJoinableError(
                    f"MLflow run {run.info.run_id} ('{run.info.run_name}') is {run.info.status}, so this kedro run "
                    f"cannot join it (that would reopen a closed run). {source}, or open a new group run with "
                    "`kedro mlflow run open` and give its id to every task.")
            grouped = joined and orchestrated.is_orchestrated(run.data.tags)
            if not grouped:  # a group run's tasks share what they log (tracking/orchestrated.py)
                _check_params_unchanged(run, params, source)
            if joined:
                role: OwnedRun = (GroupTask(orchestrated.task_label(run_params), nodes, run_params)
                                  if grouped else JoinedRun())
            else:  # an explicit `tracking.run.id` resumes the run, as kedro-mlflow does
                client.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                role = OwnedRun(resumed=True)
            experiment = client.get_experiment(run.info.experiment_id)
            return cls(config, client, run, experiment.name, role, environment=environment)
        started = datetime.now()  # the run's start time and the time in its name are one
        name = run_name(started) if callable(run_name) else run_name
        run = call_with_retry(lambda: client.create_run(experiment_id, start_time=int(started.timestamp() * 1000),
                                                        run_name=name, tags=tags))
        return cls(config, client, run, config.experiment_name, OwnedRun(), environment=environment)

    def log_params_and_tags(self, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        """One ``log_batch``: the client splits it into MLflow's 100-entry chunks."""
        from mlflow.entities import Param, RunTag

        if not params and not tags:
            return
        call_with_retry(lambda: self.client.log_batch(
            self.run_id, params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()]))

    def publish(self, environment: Mapping[str, str | None] | None = None) -> None:
        """Make this run the one every dataset, thread, worker process and fluent call logs into,
        and keep its status honest if the process is interrupted. ``environment``: more
        variables for the run's workers (restored when the run closes)."""
        self._environment.set(environment or {})
        # Only named here: the first recorded failure creates the file, so a run killed with
        # kill -9 (nothing can clean up then) leaves no empty ledger in the temp folder.
        self._failure_log = os.path.join(tempfile.gettempdir(), f"kedro-mlflow-failures-{uuid.uuid4().hex}.jsonl")
        self._environment.store(self.config.tracking_uri(), self.config.registry_uri())
        self._pending = str(pending_dir(self.config.project_path, self.run_id))  # created by the first failure
        self._environment.run(self.run_id, self._failure_log, self._pending)
        if self.config.tracking.disable_tracking.disable_autologging and "mlflow" in sys.modules:
            import mlflow

            mlflow.autolog(disable=True)
        self._guard = StatusGuard(self.close)
        self._guard.arm()
        self.role.started(self)

    def failures(self) -> list[dict[str, Any]]:
        """What could not be logged so far (from every process of this run)."""
        return read_failures(self._failure_log) if self._failure_log else []

    def node_started(self, node_name: str) -> None:
        if self.lineage is not None:
            self.lineage.node_started(node_name)

    def dataset_loaded(self, dataset_name: str, data: Any) -> None:
        if self.watch is not None and self.watch.changed_since_saved(dataset_name):
            try:
                call_with_retry(lambda: self.client.set_tag(self.run_id, OVERWRITTEN_TAG, self.watch.tag_value()))
            except Exception as error:  # noqa: BLE001 - the warning above already told the user
                logger.debug("MLflow: tag %s not set on run %s: %s", OVERWRITTEN_TAG, self.run_id, error)
        if self.lineage is not None:
            self.lineage.dataset_loaded(dataset_name, data)

    def dataset_saved(self, dataset_name: str) -> None:
        if self.watch is not None:
            self.watch.saved(dataset_name)

    def node_finished(self, node_name: str) -> None:
        if self.lineage is not None:
            self.lineage.node_finished(node_name)

    def pipeline_finished(self) -> None:
        """The pipeline succeeded: log the pipeline model, then the lineage (whose metrics link to
        the model), then end the run FINISHED, or FAILED when something could not be logged."""
        if self.lineage is not None:
            self.lineage.pipeline_finished()  # the pipeline's time ends here, before model logging
        try:
            model_uri = self.log_model(self) if self.log_model is not None else None
            self._log_lineage()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the model is logged
            self.pipeline_interrupted()
            raise
        except BaseException as error:
            self.pipeline_failed(error)
            raise
        self.finish(model_uri)

    def pipeline_failed(self, error: BaseException) -> None:
        self.role.failed(error)
        self.close("FAILED")

    def pipeline_interrupted(self) -> None:
        self.close("KILLED")

    def _log_lineage(self) -> None:
        """What the run was made from (issue 14); an outage is recorded like any other lost item."""
        if self.lineage is None:
            return
        recorder, one_task = self.lineage, self.is_task
        try:
            with outage_policy("the run's lineage (dataset inputs, kedro/ config and pipeline, node timings)",
                               replay=lambda: recorder.replay_state(one_task_of_many=one_task)):
                recorder.finish(self.client, self.run_id, self.experiment_id, one_task_of_many=one_task)
        except Exception as error:  # noqa: BLE001 - lineage never fails a pipeline that ran
            logger.warning("MLflow: the run's lineage was not fully recorded: %s", describe_error(error))

    def finish(self, model_uri: str | None = None) -> None:
        """End a run whose pipeline succeeded: FINISHED, or FAILED and ``TrackingIncompleteError`` listing each
        item that did not reach MLflow."""
        failures = self.failures()
        status = "FAILED" if failures else "FINISHED"
        self._earned = "FINISHED"  # the pipeline succeeded: what `kedro mlflow run replay` sets once all is in
        unrecorded = self.close(status, model_uri=model_uri)
        if unrecorded:
            what = (f"the run's end status ({status} while items are missing; the replay sets FINISHED)" if self.owned
                    else f"this task's outcome ({status} while items are missing; the replay records FINISHED)")
            failures.append({"what": what, "local_path": None, "error": unrecorded, "status_only": True})
        if failures:
            raise TrackingIncompleteError(
                describe_failures(failures, self.run_id, status, status_recorded=not unrecorded,
                                  env=self.tags.get("kedro.env"))
            )

    def close(self, status: str, model_uri: str | None = None, announce: bool = True) -> str | None:
        """End the run with ``status`` as its role says (once), restore the environment, say where the run is
        (``announce``). Returns None when the status was recorded, else why not (the run stays RUNNING)."""
        if not self.is_open:
            return None
        self.is_open = False
        if self._guard is not None:
            self._guard.disarm()
        leave_all_node_runs()
        try:
            with outage_policy(None) as outage:
                self.role.close(self, status)
                if announce:
                    self._announce(status, model_uri)
        finally:
            self._environment.restore()
            if self._failure_log:
                Path(self._failure_log).unlink(missing_ok=True)
            task = {"label": self.role.label, "nodes": self.role.nodes} if isinstance(self.role, GroupTask) else None
            seal(self._pending, self.run_id, self._earned or status, closed_as=status, owned=self.owned, task=task,
                 env=self.tags.get("kedro.env"))
        if outage.error is None:
            return None
        problem = describe_error(outage.error)
        fix = (f"`{replay_command(self.run_id, self.tags.get('kedro.env'))}`" if has_pending(self._pending)
               else "`kedro mlflow stale-runs --mark-killed`")
        logger.warning("MLflow: could not mark run %s %s (%s). It shows as RUNNING until you run %s once the "
                       "tracking server is back.", self.run_id, status, problem, fix)
        return problem

    def end(self, status: str) -> None:
        """Set the run's end status (a run that did not finish: its models still PENDING end FAILED); drop
        it from MLflow's fluent stack if user code joined it."""
        if status != "FINISHED":
            self.fail_pending_models()
        if user_run_id() == self.run_id:
            import mlflow

            mlflow.end_run(status=status)
        else:
            call_with_retry(lambda: self.client.set_terminated(self.run_id, status=status))

    def fail_pending_models(self) -> None:
        try:
            fail_pending_models(self.client, self.experiment_id, self.run_id)
        except Exception as error:  # noqa: BLE001 - the run's status matters more
            logger.debug("MLflow: the PENDING models of run %s were not checked: %s", self.run_id, error)

    def _announce(self, status: str, model_uri: str | None) -> None:
        """One log line for the run, then its URL and the model's URI, printed: Kedro's rich log handler
        would wrap a long URI at the terminal's width (copy-paste then fails)."""
        uri = redact_uri(self.config.tracking_uri())
        base = ui_base(uri, self.config.ui.host, self.config.ui.port)
        how = "" if uri.startswith(("http://", "https://")) else " (`kedro mlflow ui` serves it)"
        logger.info("MLflow run '%s' (%s) %s in experiment '%s'%s:", self.run_name, self.run_id,
                    self.role.state(status), self.experiment_name, how)
        if self.watch is not None and self.watch.overwritten:  # said mid-log already: said again where it is read
            logger.warning("MLflow: this run read back %s, which another process rewrote after this run saved it: "
                           "what it computed from them may not be its own (tag %s).",
                           ", ".join(sorted(self.watch.overwritten)), OVERWRITTEN_TAG)
        for handler in logging.getLogger().handlers:  # let the log line above reach the terminal first
            handler.flush()
        sys.stdout.write(f"Run:   {run_url(base, self.experiment_id, self.run_id)}\n"
                         + (f"Model: {model_uri}\n" if model_uri else ""))
        sys.stdout.flush()


def _existing_run(client: MlflowClient, run_id: str, tracking_uri: str, fix: str) -> Run:
    """The run ``run_id``; ``RunNotFoundError`` naming the store and ``fix`` when the store has no such run
    (any other error of the store is raised as it is: an outage is not a wrong id)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RunNotFoundError(f"MLflow run '{run_id}' was not found in {redact_uri(tracking_uri)}. {fix}") from None


def _check_params_unchanged(run: Run, params: Mapping[str, str], source: str) -> None:
    """MLflow never changes a logged parameter: a run joined or resumed with other values is refused
    before anything is logged into it or its status changes."""
    conflicts = orchestrated.plan_join(run.data.params, {}, params, {}).conflicts  # the comparison a join makes
    changed = [f"{key}: {logged!r} logged, {value!r} now" for key, (logged, value) in conflicts.items()]
    if changed:
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise RunNotJoinableError(
            f"MLflow run {run.info.run_id} ('{run.info.run_name}') holds other values of {len(changed)} parameter(s) "
            f"of this kedro run: {'; '.join(changed[:3])}{more}. MLflow never changes a logged parameter. {source}, "
            "or run with the values it logged.")


def default_run_name(config: MlflowConfig, pipeline_names: Sequence[str], now: datetime | None = None) -> str:
    """A sweep trial's name, else ``tracking.run.name``, else ``<pipelines> <HH:MM:SS>`` (``default 15:32:08``:
    the runs list's name column shows about 20 characters; its Created column gives the day)."""
    if os.environ.get(ENV_RUN_NAME):  # a sweep's trial (tracking/run_tags.py)
        return os.environ[ENV_RUN_NAME]
    if config.tracking.run.name:
        return config.tracking.run.name
    names = "+".join("default" if name == "__default__" else name for name in pipeline_names)
    return f"{names} {(now or datetime.now()):%H:%M:%S}"
