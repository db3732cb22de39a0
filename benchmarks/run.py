"""`make bench`: the performance table of kedro-mlflow-starter.

Every row is measured side by side with its baseline in the same run (alternating
repetitions, medians reported), printed as a table and written to
benchmarks/results.json. Rows that miss their target are marked. Environment knobs:
BENCH_REPEATS (default 5) for the command-level rows.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import KEDRO, REPO, WORK, alternate, disable_tracking, env, new_starter_project, row, \
    timed_command  # noqa: E402

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
HERE = Path(__file__).resolve().parent


def cli_startup(project: Path) -> list[dict]:
    wrapper = [sys.executable, str(HERE / "kedro_cli.py")]
    with_plugin, without = alternate(
        max(REPEATS, 7),
        lambda: timed_command([*wrapper, "--with-plugin", "--help"], project)[0],
        lambda: timed_command([*wrapper, "--without-plugin", "--help"], project)[0],
    )
    ratio = with_plugin / without
    return [row("CLI start-up: kedro --help in the starter project", "same venv, plugin entry points hidden",
                without, with_plugin, "<= 1.05x", ratio <= 1.05)]


def tracked_run(tracked: Path, untracked: Path) -> tuple[list[dict], list[dict]]:
    rss: dict[str, list[int]] = {"tracked": [], "untracked": []}

    def run(project: Path, key: str) -> float:
        elapsed, peak = timed_command([KEDRO, "run"], project)
        rss[key].append(peak)
        return elapsed

    run(tracked, "tracked")  # creates the store: the rows below are on a warm store
    run(untracked, "untracked")
    rss = {"tracked": [], "untracked": []}
    tracked_s, untracked_s = alternate(REPEATS, lambda: run(tracked, "tracked"), lambda: run(untracked, "untracked"))
    ratio = tracked_s / untracked_s
    rows = [row("kedro run of the starter, warm store", "same project, tracking disabled in mlflow.yml",
                untracked_s, tracked_s, "<= 1.10x", ratio <= 1.10)]

    fresh_times = []
    for _ in range(max(2, REPEATS // 2)):
        for leftover in ("mlflow.db", "mlflow.db.lock", "mlartifacts"):
            path = tracked / leftover
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        fresh_times.append(timed_command([KEDRO, "run"], tracked)[0])
    fresh = statistics.median(fresh_times)
    rows.append(row("kedro run of the starter, first run (creates the SQLite store)",
                    "same project, tracking disabled in mlflow.yml", untracked_s, fresh, "reported", None))
    peak_tracked = statistics.median(rss["tracked"]) / 1024
    peak_untracked = statistics.median(rss["untracked"]) / 1024
    memory = [row("peak RSS of kedro run (MiB)", "same project, tracking disabled", peak_untracked, peak_tracked,
                  "<= 1.10x", peak_tracked / peak_untracked <= 1.10, unit="MiB")]
    return rows, memory


def inprocess(kind: str, target: Path, repeats: int) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "inprocess.py"), kind, str(target), str(repeats)],
                          cwd=target if target.is_dir() else WORK, env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"inprocess {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parameters() -> list[dict]:
    """What tracking adds for 1,000 parameters over 2: (tracked - untracked) at each size,
    so Kedro's own cost of reading 1,000 parameters is not charged to the plugin."""
    from tests.project_factory import make_project

    nodes = "def use_all(parameters: dict) -> float:\n    return float(len(parameters))\n"
    registry = ('from kedro.pipeline import Pipeline, node\n\n\ndef register_pipelines():\n'
                '    from {package}.nodes import use_all\n\n'
                '    return {{"__default__": Pipeline([node(use_all, "parameters", "count")])}}\n')
    overhead = {}
    for count in (2, 1000):
        root = WORK / f"params-{count}"
        shutil.rmtree(root, ignore_errors=True)
        groups = 10 if count >= 10 else 1
        values = {f"group{g}": {f"p{i}": g * 1000 + i for i in range(count // groups)} for g in range(groups)}
        project = make_project(root, package=f"params_{count}", nodes=nodes, registry=registry, parameters=values,
                               catalog={}, mlflow_yml={"tracking": {"params": {"dict_params": {"flatten": True}}}})
        twin = root / "untracked"
        shutil.copytree(project.path, twin)
        disable_tracking(twin)
        tracked = statistics.median(inprocess("sessions", project.path, REPEATS)["times"])
        untracked = statistics.median(inprocess("sessions", twin, REPEATS)["times"])
        overhead[count] = tracked - untracked
    extra = overhead[1000] - overhead[2]
    floor = statistics.median(inprocess("param_floor", WORK / "param-floor", REPEATS)["times"])
    return [row("tracking cost of a session.run, 1,000 flattened params", "same with 2 params", overhead[2],
                overhead[1000], f"<= +0.1 s (measured {extra:+.3f} s; MLflow's own log_batch of 1,000 on "
                f"SQLite: {floor:.3f} s)", extra <= 0.1)]


def lineage_cost(tracked: Path, reference_s: float | None = None) -> list[dict]:
    """What recording lineage (dataset inputs, metric links, config + pipeline artifacts, node
    timings) adds to the starter's run: the same project with every switch off, alternated in
    one warm process. The target is on the time added, as a share of the starter's tracked
    ``kedro run`` (``reference_s``, the warm-store row; the in-process run itself if None)."""
    twin = tracked.with_name(tracked.name + "-lineage-off")
    shutil.rmtree(twin, ignore_errors=True)
    shutil.copytree(tracked, twin, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts"))
    (twin / "conf" / "local" / "mlflow.yml").write_text(
        "tracking:\n  lineage: {datasets: false, config: false, node_timings: false, pipeline_graph: false}\n")
    result = inprocess("lineage", tracked, max(REPEATS, 7))
    on, off = statistics.median(result["on"]), statistics.median(result["off"])
    shutil.rmtree(twin, ignore_errors=True)
    added = on - off
    share = added / (reference_s or on)
    return [row("lineage cost: session.run of the starter, lineage on", "same, every tracking.lineage switch off",
                off, on, f"added < 5% of the tracked kedro run (+{added * 1000:.0f} ms = {share:.1%})", share < 0.05)]


def digest_flatness() -> list[dict]:
    result = inprocess("digest", WORK / "digest", REPEATS)
    small, large = statistics.median(result["1"]), statistics.median(result["100"])
    return [row("file-metadata digest of a dataset not in memory: 100 MB file", "same for a 1 MB file", small, large,
                f"<= 1.5x, flat in size (reading + hashing the 100 MB: {result['read_100']:.3f} s)",
                large / small <= 1.5)]


def metric_history() -> list[dict]:
    result = inprocess("metric_history", WORK / "metrics", REPEATS)
    dataset, floor = statistics.median(result["times"]), statistics.median(result["floor"])
    return [row("MlflowMetricHistoryDataset.save, 10,000 points (SQLite)", "one raw client.log_batch of the same",
                floor, dataset, "< 0.5 s", dataset < 0.5)]


def predict() -> list[dict]:
    from benchmarks.bench_predict import measure

    rows = []
    for measured in measure(repeats=30):
        target = measured["target"] or "reported"
        meets = measured["ratio"] <= measured["target_ratio"] if measured["target_ratio"] else None
        rows.append(row(measured["name"], measured["baseline"], measured["baseline_s"], measured["measured_s"],
                        target, meets))
    return rows


def model_logging(untracked: Path) -> list[dict]:
    result = inprocess("model_logging", untracked, 3)
    first, median = result["times"][0], statistics.median(result["times"])
    return [row("pipeline model logging after training (starter)", None, None, first,
                f"<= 0.5 s (first call; median of 3: {median:.3f} s)", first <= 0.5)]


SWEEP_TRIALS = int(os.environ.get("BENCH_SWEEP_TRIALS", "20"))


def sweep_overhead(tracked: Path) -> list[dict]:
    """`kedro mlflow sweep` of the starter (a grid of SWEEP_TRIALS values of model_options.C) against
    the same trials as `kedro run --params` processes one after another: the time per trial, and the
    sweep with --jobs 2 against --jobs 1."""
    values = [round(10 ** (-3 + 4 * i / max(1, SWEEP_TRIALS - 1)), 6) for i in range(SWEEP_TRIALS)]
    (tracked / "conf" / "local" / "sweeps.yml").write_text(
        "bench:\n  objective: {metric: test.accuracy}\n  method: grid\n"
        f"  params:\n    model_options.C: {values}\n")
    plain = sum(timed_command([KEDRO, "run", "--params", f"model_options.C={value}"], tracked)[0] for value in values)
    jobs1 = timed_command([KEDRO, "mlflow", "sweep", "bench"], tracked)[0]
    jobs2 = timed_command([KEDRO, "mlflow", "sweep", "bench", "--jobs", "2"], tracked)[0]
    n = SWEEP_TRIALS
    return [
        row("sweep: time per trial, kedro mlflow sweep --jobs 1 (starter)", "one `kedro run --params` process",
            plain / n, jobs1 / n, f"reported ({1000 * (jobs1 - plain) / n:+.0f} ms per trial against a kedro run process)", None),
        row(f"sweep: {n} trials of the starter, --jobs 1", f"{n} `kedro run --params` one after another", plain,
            jobs1, "<= 0.4x", jobs1 / plain <= 0.4),
        row(f"sweep: {n} trials of the starter, --jobs 2 ({os.cpu_count()} cores)", "same sweep, --jobs 1", jobs1,
            jobs2, "< 1.0x", jobs2 < jobs1),
    ]


def render(rows: list[dict]) -> str:
    lines = ["| row | baseline | baseline | measured | ratio | target | |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = r["unit"]
        fmt = (lambda v: f"{v * 1000:.3f} ms" if v < 0.1 else f"{v:.3f} s") if unit == "s" else (lambda v: f"{v:.0f} {unit}")
        base = fmt(r["baseline_s"]) if r["baseline_s"] is not None else "-"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        mark = {True: "ok", False: "MISSED", None: ""}[r["meets_target"]]
        lines.append(f"| {r['name']} | {r['baseline'] or '-'} | {base} | {fmt(r['measured_s'])} | {ratio} | "
                     f"{r['target']} | {mark} |")
    return "\n".join(lines)


def main() -> int:
    started = time.perf_counter()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    tracked = new_starter_project("bench-iris")
    untracked = WORK / "bench-iris-untracked"
    shutil.copytree(tracked, untracked)
    disable_tracking(untracked)

    rows: list[dict] = []
    steps = [
        ("CLI start-up", lambda: cli_startup(tracked)),
        ("tracked run", lambda: tracked_run(tracked, untracked)),
        ("lineage", lambda: lineage_cost(tracked, next((r["measured_s"] for r in rows if r["name"].startswith(
            "kedro run of the starter, warm store")), None))),
        ("digest", digest_flatness),
        ("parameters", parameters),
        ("metric history", metric_history),
        ("predict", predict),
        ("model logging", lambda: model_logging(untracked)),
        ("sweep", lambda: sweep_overhead(tracked)),
    ]
    only = os.environ.get("BENCH_ONLY")  # e.g. BENCH_ONLY=sweep: that step alone, into results-sweep.json
    if only:
        steps = [step for step in steps if step[0] == only]
    memory: list[dict] = []
    for label, step in steps:
        print(f"bench: {label} ...", flush=True)
        result = step()
        if isinstance(result, tuple):
            result, memory = result
        rows.extend(result)
    rows.extend(memory)
    table = render(rows)
    print("\n" + table)
    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "repeats": REPEATS, "seconds": round(time.perf_counter() - started, 1)}
    target = f"results-{only}.json" if only else "results.json"
    (HERE / target).write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    print(f"\n{info}\nwritten to benchmarks/{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
