"""``conf/<env>/sweeps.yml``: the hyperparameter sweeps of a project (one top-level key per sweep, docs/sweeps.md),
validated."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kedro.config import MissingConfigException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kedro_mlflow_starter.config.loader import config_files, file_defining, invalid_value, register_config_key
from kedro_mlflow_starter.errors import SweepConfigError

if TYPE_CHECKING:
    from kedro.config import AbstractConfigLoader

CONFIG_KEY = "sweeps"
METHODS = ("grid", "random", "optuna")
RANGE_KEYS = ("low", "high", "log", "step")
ALLOWED_SPACES = ("a list of values, e.g. [lbfgs, liblinear]; or a range {low: 0.001, high: 10.0} with optional "
                  "`log: true` or `step: 0.5` (integer bounds and step: an integer range)")


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, description="The metric of each trial's run to optimise, e.g. test.accuracy.")
    direction: Literal["maximize", "minimize"] = "maximize"
    check: bool = Field(True, description="Check before any trial that a metric dataset of the pipeline logs it.")


class Space(BaseModel):
    """One parameter's search space: ``choices`` (a list in the YAML) or a range."""

    model_config = ConfigDict(extra="forbid")

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def grid(self) -> list[Any]:
        """The finite values of this space (a grid's axis)."""
        if self.choices is not None:
            return list(self.choices)
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(round(v)) for v in values] if self.integer else [round(v, 12) for v in values]

    def describe(self) -> str:
        if self.choices is not None:
            return "[" + ", ".join(str(c) for c in self.choices) + "]"
        kind = "int" if self.integer else "float"
        extra = " log" if self.log else f" step {_number(self.step)}" if self.step else ""
        return f"{kind} {_number(self.low)}..{_number(self.high)}{extra}"


class Sweep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline: str = "__default__"
    objective: Objective
    method: Literal["grid", "random", "optuna"] = "optuna"
    trials: int | None = Field(None, ge=1)
    seed: int | None = None
    best_alias: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$",
                                   description="Registry alias given to the best trial's registered model version.")
    params: dict[str, Any] = Field(min_length=1)

    # filled by parse_sweeps
    name: str = ""
    source: str = ""
    spaces: dict[str, Space] = Field(default_factory=dict)

    def grid_points(self) -> list[dict[str, Any]]:
        names = list(self.spaces)
        return [dict(zip(names, values)) for values in itertools.product(*(self.spaces[n].grid() for n in names))]

    def trial_count(self, override: int | None = None) -> int:
        """How many trials the sweep runs (a grid: at most its size)."""
        wanted = override or self.trials
        if self.method == "grid":
            size = len(self.grid_points())
            return min(wanted, size) if wanted else size
        return wanted or 10


def _number(value: float | None) -> str:
    return "" if value is None else (str(int(value)) if float(value).is_integer() else str(value))


def load_sweeps(config_loader: AbstractConfigLoader, project_path: Path) -> dict[str, Sweep]:
    """Every sweep of the project's ``sweeps.yml`` files (empty when there is none)."""
    register_config_key(config_loader, CONFIG_KEY)
    files = config_files(config_loader, project_path, CONFIG_KEY)
    try:
        raw = config_loader[CONFIG_KEY]
    except (KeyError, MissingConfigException):
        return {}
    except Exception as error:  # YAML syntax, duplicate sweep names across files
        names = ", ".join(str(p) for p in files) or "conf/*/sweeps.yml"
        raise SweepConfigError(f"Could not read the sweeps ({names}): {error}") from error
    return parse_sweeps(dict(raw or {}), files)


_FILLED_KEYS = ("name", "source", "spaces")  # filled in by parse_sweeps, never written by the user


def _user_keys(model: type[BaseModel]) -> list[str]:
    return [key for key in model.model_fields if key not in _FILLED_KEYS]


def parse_sweeps(raw: Mapping[str, Any], files: list[Path] | None = None) -> dict[str, Sweep]:
    files = files or []
    sweeps = {}
    for name, body in raw.items():
        where = file_defining(files, (str(name),)) or "conf/*/sweeps.yml"
        if not isinstance(body, Mapping):
            raise SweepConfigError(f"{where}: sweep '{name}' must be a mapping with the keys "
                                   f"{', '.join(_user_keys(Sweep))}.")
        if any(key in body for key in _FILLED_KEYS):
            raise SweepConfigError(f"{where}: {name}: unknown key. Allowed keys: {', '.join(_user_keys(Sweep))}.")
        try:
            sweep = Sweep.model_validate(dict(body))
        except ValidationError as error:
            raise SweepConfigError(_describe(error, str(name), where)) from None
        sweep.name, sweep.source = str(name), where
        sweep.spaces = {key: parse_space(value, f"{where}: {name}.params.{key}")
                        for key, value in sweep.params.items()}
        if sweep.method == "grid":
            for key, space in sweep.spaces.items():
                if space.choices is None and space.step is None:
                    raise SweepConfigError(
                        f"{where}: {name}.params.{key}: a grid needs a finite set of values, and "
                        f"{space.describe()} is a continuous range. Give a list of values or a `step:`, "
                        "or use `method: random` or `method: optuna`.")
        sweeps[str(name)] = sweep
    return sweeps


def parse_space(value: Any, where: str) -> Space:
    """One parameter's search space from its YAML value."""
    if isinstance(value, list):
        if not value:
            raise SweepConfigError(f"{where}: the list of values is empty. Give at least one value: {ALLOWED_SPACES}.")
        return Space(choices=value)
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"{where}: {value!r} is not a search space. Allowed: {ALLOWED_SPACES}.")
    unknown = sorted(set(value) - set(RANGE_KEYS) - {"choices"})
    if unknown:
        raise SweepConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}: Optuna has no such distribution. Allowed keys: "
            f"{', '.join(RANGE_KEYS)} (a range) or choices (a list). Allowed: {ALLOWED_SPACES}.")
    if "choices" in value:
        return parse_space(list(value["choices"] or []), where)
    if "low" not in value or "high" not in value:
        raise SweepConfigError(f"{where}: a range needs both `low` and `high`. Allowed: {ALLOWED_SPACES}.")
    low, high, step = value["low"], value["high"], value.get("step")
    for key, number in (("low", low), ("high", high), ("step", step)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))):
            raise SweepConfigError(f"{where}: {key} = {number!r} is not a number.")
    if low > high:
        raise SweepConfigError(f"{where}: low ({low}) is greater than high ({high}): the range is empty.")
    log = bool(value.get("log", False))
    if log and step is not None:
        raise SweepConfigError(f"{where}: `log: true` and `step` cannot be combined (Optuna samples a log range "
                               "continuously). Keep one of them.")
    if log and low <= 0:
        raise SweepConfigError(f"{where}: a log range needs low > 0 (got {low}).")
    if step is not None and step <= 0:
        raise SweepConfigError(f"{where}: step must be > 0 (got {step}).")
    integer = all(isinstance(n, int) for n in (low, high) + ((step,) if step is not None else ()))
    return Space(low=low, high=high, log=log, step=step, integer=integer)


def _describe(error: ValidationError, name: str, where: str) -> str:
    lines = []
    for issue in error.errors():
        key = ".".join([name, *(str(part) for part in issue["loc"])])
        if issue["type"] == "extra_forbidden":
            model = Objective if issue["loc"][0] == "objective" else Sweep
            lines.append(f"unknown key '{key}'. Allowed keys here: {', '.join(_user_keys(model))}.")
        elif issue["type"] == "missing":
            lines.append(f"'{key}' is missing: it is required.")
        elif issue["loc"] == ("method",):
            lines.append(f"{key} = {issue.get('input')!r}: allowed methods are {', '.join(METHODS)}.")
        elif issue["loc"] == ("params",):
            lines.append(f"{key}: give at least one parameter to search, e.g. `model_options.C: [0.1, 1.0]`.")
        else:
            lines.append(invalid_value(key, issue))
    return f"Invalid sweep in {where}: " + " ".join(lines)


def nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model_options.C": 1}`` -> ``{"model_options": {"C": 1}}`` (what ``--params`` builds)."""
    result: dict[str, Any] = {}
    for key, value in dotted.items():
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two nested parameter dicts; ``override`` wins."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def lookup(params: Mapping[str, Any], dotted: str) -> tuple[bool, str]:
    """Whether ``dotted`` names a parameter of ``params``; else the deepest existing prefix's keys."""
    node: Any = params
    walked = []
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
            walked.append(part)
        else:
            siblings = sorted(str(k) for k in node) if isinstance(node, Mapping) else []
            prefix = ".".join(walked)
            return False, (f"under '{prefix}' the parameters are: {', '.join(siblings) or 'none'}" if prefix
                           else f"the top-level parameters are: {', '.join(siblings) or 'none'}")
    return True, ""
