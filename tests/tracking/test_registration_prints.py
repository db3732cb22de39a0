"""What MLflow prints while a model is registered becomes our log lines."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("mlflow_prints", "logged"),
    [
        ("Successfully registered model 'iris'.\nCreated version '1' of model 'iris'.\n",
         ["MLflow: registered version 1 of model 'iris' (a new registered model)."]),
        ("Registered model 'iris' already exists. Creating a new version of this model...\n"
         "Created version '7' of model 'iris'.\n", ["MLflow: registered version 7 of model 'iris'."]),
    ],
    ids=["new-model", "new-version"],
)
def test_mlflow_registration_prints_become_one_log_line(mlflow_prints, logged, capsys, caplog) -> None:
    import sys

    from kedro_mlflow_starter.tracking.registration_prints import mlflow_prints_logged

    with caplog.at_level("INFO", logger="kedro_mlflow_starter"), mlflow_prints_logged():
        sys.stderr.write(mlflow_prints)
        sys.stderr.write("UserWarning: anything else goes through\n")
    assert [r.getMessage() for r in caplog.records] == logged
    assert capsys.readouterr().err == "UserWarning: anything else goes through\n"
