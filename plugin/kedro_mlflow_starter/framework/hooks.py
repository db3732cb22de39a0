"""``MlflowHook``: one honest MLflow run per ``kedro run``, each Kedro hook handed to the session's
tracking (framework/session_tracking.py) or to the run (tracking/run.py)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kedro.framework.hooks import hook_impl

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.framework.session_tracking import SessionTracking
from kedro_mlflow_starter.framework.trial_outputs import redirect_trial_outputs
from kedro_mlflow_starter.models.snapshots import snapshot_saved
from kedro_mlflow_starter.tracking.current import enter_node_run, leave_node_run

if TYPE_CHECKING:  # pragma: no cover
    from kedro.framework.context import KedroContext
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline
    from kedro.pipeline.node import Node

    from kedro_mlflow_starter.tracking.run import TrackedRun


class MlflowHook:
    """Tracks every ``kedro run`` in MLflow as configured by ``conf/*/mlflow.yml``."""

    def __init__(self) -> None:
        self.session = SessionTracking()
        self.run: TrackedRun | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        if self.run is not None:  # a previous session in this process was interrupted (Ctrl-C in a notebook)
            self.run, run = None, self.run
            run.pipeline_interrupted()
        context.mlflow = self.session.context_created(context)

    @hook_impl
    def after_catalog_created(self, catalog: DataCatalog) -> None:
        build_mlflow_datasets(catalog)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        redirect_trial_outputs(run_params, pipeline, catalog)
        self.run = self.session.pipeline_started(run_params, pipeline, catalog)

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Node) -> None:
        if self.run is not None and node is not None:
            self.run.node_started(node.name)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Node) -> None:
        if self.run is not None:
            self.run.dataset_loaded(dataset_name, data)

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        enter_node_run()  # in every worker: `mlflow.active_run()` in the node is the Kedro run
        if self.run is not None:
            self.run.node_started(node.name)

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        leave_node_run()
        if self.run is not None:
            self.run.node_finished(node.name)

    @hook_impl
    def on_node_error(self) -> None:
        leave_node_run()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        snapshot_saved(dataset_name, data)  # in every worker: the run's own copy of a model artifact
        if self.run is not None:
            self.run.dataset_saved(dataset_name)
            if node is not None:
                self.run.node_finished(node.name)

    @hook_impl(wrapper=True)  # around the project's own after_pipeline_run, which sees the run active
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline,
                           catalog: DataCatalog) -> Generator[None, Any, Any]:
        try:
            result = yield
        except BaseException as error:  # the project's after_pipeline_run failed
            self.on_pipeline_error(error, run_params, pipeline, catalog)
            raise
        run, self.run = self.run, None
        if run is None:
            self.session.untracked_pipeline_ended(succeeded=True)
        else:
            run.pipeline_finished()
        return result

    @hook_impl(trylast=True)  # after the project's on_pipeline_error, which sees the run active
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Pipeline,
                          catalog: DataCatalog) -> None:
        run, self.run = self.run, None
        if run is None:
            self.session.untracked_pipeline_ended(succeeded=False)
        else:
            run.pipeline_failed(error)


mlflow_hook = MlflowHook()
