"""Every exception kedro-mlflow-starter raises, in one family.

``KedroMlflowError`` is the root. Its ``KedroMlflowUserError`` branch holds the errors a user
fixes in configuration, in the catalog or in their environment: their message is the whole
story (what is wrong, where, and the fix), so the command line shows it as one
``Error: <message>`` line without a traceback. That formatting is done at the CLI edge
(``framework/cli_errors.py``), not here: in Python (a notebook, a session created by hand)
these are ordinary exceptions whose ``str`` is the message.

Each class also derives from the built-in (or Kedro) exception a caller would naturally
catch: a bad ``mlflow.yml`` is a ``ValueError``, a dataset problem a Kedro ``DatasetError``.
"""

from __future__ import annotations

from kedro.io.core import DatasetError, DatasetNotFoundError


class KedroMlflowError(Exception):
    """The root of every kedro-mlflow-starter exception."""


class KedroMlflowUserError(KedroMlflowError):
    """An error whose message is the whole story: what is wrong, where, and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str]]:  # picklable (ParallelRunner workers)
        return (type(self), (self.message,))


# -- configuration --------------------------------------------------------------------------


class MlflowConfigError(KedroMlflowUserError, ValueError):
    """``mlflow.yml`` (or the credentials it names) is invalid; the message says where and how to fix it."""


class UnsupportedTrackingUriError(KedroMlflowUserError, ValueError):
    """A tracking or registry URI whose form MLflow cannot use."""


# -- the tracking store and the run ---------------------------------------------------------


class TrackingStoreUnreachableError(KedroMlflowUserError, ConnectionError):
    """The tracking store could not be reached when the run started (nothing has run yet)."""

    def __init__(self, uri: str, problem: str) -> None:
        from kedro_mlflow_starter.config.redaction import redact_uri

        self.uri = redact_uri(uri)
        self.problem = redact_uri(problem)
        super().__init__(
            f"MLflow tracking server {self.uri} is unreachable ({self.problem}); no node has run. Check that the "
            "server is running and that server.mlflow_tracking_uri in conf/*/mlflow.yml (or MLFLOW_TRACKING_URI) "
            "names it, or set server.on_unreachable: run_untracked to run the pipeline without tracking."
        )

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # type: ignore[override]
        return (type(self), (self.uri, self.problem))

    def untracked_notice(self) -> str:
        """What to say when ``server.on_unreachable: run_untracked`` lets the pipeline go on."""
        return (
            f"MLflow tracking server {self.uri} is unreachable ({self.problem}); running the pipeline UNTRACKED "
            "(server.on_unreachable: run_untracked): nothing of this run will be in MLflow."
        )


class NotAnMlflowServerError(KedroMlflowUserError, ValueError):
    """The tracking URI answers HTTP, but it is not an MLflow tracking server (any web server, a proxy's 404)."""


class ExperimentDeletedError(KedroMlflowUserError, RuntimeError):
    """The configured experiment is deleted and ``restore_if_deleted`` is off."""


class RunNotFoundError(KedroMlflowUserError, LookupError):
    """A run id given by the user names no run in the configured store."""


class RunNotJoinableError(KedroMlflowUserError, RuntimeError):
    """A task was handed a run (``MLFLOW_RUN_ID``) that is no longer RUNNING: joining it would reopen it."""


class LongParameterError(KedroMlflowUserError, ValueError):
    """A parameter value is longer than MLflow allows and the strategy is ``fail``."""


class OrchestratedRunError(KedroMlflowUserError, RuntimeError):
    """``kedro mlflow run open|close`` cannot do its step (unknown pipeline, not an orchestrated run...)."""


class TrackingIncompleteError(KedroMlflowUserError, RuntimeError):
    """The pipeline ran, but some of what it should have logged did not reach MLflow.

    The message lists each item (params, metrics, artifacts, models, the run's status) with
    the local file it came from, so the user can re-log it once the server is back.
    """


class CatalogEntryError(KedroMlflowUserError, DatasetError):
    """A catalog entry naming one of our datasets cannot be built (a misspelt ``type:``, an unknown
    argument...); the message names the entry, what is wrong and the likely fix."""


class NoActiveRunError(KedroMlflowUserError, DatasetError):
    """A dataset must log but no MLflow run is open (and none was named)."""


class TerminatedError(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM during a tracked run.

    A ``KeyboardInterrupt`` (not a ``KedroMlflowError``) on purpose: it must unwind the run
    exactly like Ctrl-C, through every ``except Exception`` on the way.
    """


# -- sweeps (`kedro mlflow sweep`) ------------------------------------------------------------


class SweepConfigError(KedroMlflowUserError, ValueError):
    """A sweep of ``conf/*/sweeps.yml`` (or the command's options) cannot run; no trial has run."""


class SweepError(KedroMlflowUserError, RuntimeError):
    """A sweep cannot go on (nothing to resume, the study's parent run is missing, a worker died)."""


# -- pipeline models ------------------------------------------------------------------------


class KedroMlflowPipelineMLError(KedroMlflowUserError, ValueError):
    """A ``pipeline_ml_factory`` call, a ``PipelineML`` or a pipeline model cannot work.

    The message names the datasets involved and how to fix the declaration.
    """


class KedroPipelineModelError(KedroMlflowPipelineMLError):
    """A ``KedroPipelineModel`` cannot be built, loaded or run as asked (kedro-mlflow's name).

    A ``ValueError`` like every pipeline-model error: catching ``KedroMlflowPipelineMLError``
    catches it too.
    """


class PipelineModelArtifactMissingError(KedroMlflowPipelineMLError):
    """A node of the run saved an artifact of the pipeline model but the run holds no copy of it."""


class PipelineModelInputNotFoundError(KedroPipelineModelError, DatasetNotFoundError):
    """An input of the inference pipeline has no catalog entry: also Kedro's ``DatasetNotFoundError``."""
