"""Fixtures for the project's tests: the shipped data and the parameters in conf/base."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def parameters() -> dict:
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local")
    return loader["parameters"]


@pytest.fixture(scope="session")
def iris() -> pd.DataFrame:
    return pd.read_csv(PROJECT_ROOT / "data/01_raw/iris.csv")


@pytest.fixture(scope="session")
def instances() -> pd.DataFrame:
    return pd.read_csv(PROJECT_ROOT / "data/05_model_input/instances.csv")
