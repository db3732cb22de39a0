"""Shared pieces of `make bench`: timing, projects, the result row."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / ".work"
BIN = Path(sys.executable).parent
KEDRO = str(BIN / "kedro")


def row(name: str, baseline: str | None, baseline_s: float | None, measured_s: float, target: str,
        meets: bool | None, unit: str = "s") -> dict:
    """One line of the table: ``measured_s`` next to ``baseline_s`` from the same run."""
    ratio = measured_s / baseline_s if baseline_s else None
    return {"name": name, "baseline": baseline, "baseline_s": baseline_s, "measured_s": measured_s,
            "ratio": ratio, "target": target, "meets_target": meets, "unit": unit}


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KEDRO_MLFLOW_"))}
    clean.update({"KEDRO_DISABLE_TELEMETRY": "true", "PATH": f"{BIN}{os.pathsep}{clean.get('PATH', '')}"})
    clean.update(extra or {})
    return clean


def timed_command(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one command, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=env(extra_env), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}) in {cwd}:\n{stderr[-3000:]}")
    return elapsed, usage.ru_maxrss


def alternate(repeats: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[float, float]:
    """Medians of ``first`` and ``second``, measured alternately so drift hits both alike."""
    a, b = [], []
    for _ in range(repeats):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def new_starter_project(name: str) -> Path:
    """A fresh project from this repository's starter, as `kedro new --config` makes it."""
    target = WORK / name
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    rc = WORK / "cookiecutterrc.yml"
    rc.write_text(f"replay_dir: {WORK / '.replay'}\ncookiecutters_dir: {WORK / '.cookiecutters'}\n")
    answers = WORK / f"{name}.yml"
    scratch = WORK / f"{name}-new"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    answers.write_text(f"project_name: Bench Iris\nmlflow_tracking_uri: sqlite:///mlflow.db\noutput_dir: {scratch}\n")
    subprocess.run([KEDRO, "new", f"--starter={REPO}", f"--config={answers}"], cwd=WORK, check=True,
                   env=env({"COOKIECUTTER_CONFIG": str(rc)}), stdout=subprocess.DEVNULL)
    (generated,) = [p for p in scratch.iterdir() if p.is_dir()]
    generated.rename(target)
    shutil.rmtree(scratch)
    return target


def disable_tracking(project: Path) -> None:
    """The untracked twin: the hook is loaded but opens no run (datasets save locally)."""
    mlflow_yml = project / "conf" / "local" / "mlflow.yml"
    mlflow_yml.write_text("tracking:\n  disable_tracking:\n    pipelines: [__default__]\n")
