"""The README's quickstart, pasted into a shell in a temp folder, and the commands `make demo` prints.

The fenced ``bash`` blocks of the README's "Quickstart" section (its subsections included)
run in order, in one bash shell (so ``cd`` and ``export`` carry over), with this test venv
first on PATH. Each line runs as written, except those that QUICKSTART_MAP names:

- allow-listed lines (SKIP) are not run, each for the reason given; the script echoes them;
- ``kedro new --starter=mlflow-iris`` (interactive) gets Enter twice on stdin: the defaults;
- ``mlflow models serve`` runs in the background until it answers ``/ping``, and is stopped
  at the end; its port (5001 in the README) becomes a free port, in the ``curl`` line too;
- a command that already ran (the install-without-an-index block repeats ``kedro new``) is
  not run twice.

Lines no entry names run unchanged. ``pip`` runs with PIP_NO_INDEX=1: the test venv (made
from this checkout by ``make venv``) must already satisfy what a quickstart line installs.
HOME is a temp folder, so nothing lands in the real home. A README line that matches no rule
and fails, an allow-list entry that no line uses, or a quickstart without `kedro new`,
`kedro run` and the serve/predict commands fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project_factory import free_port, project_env

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README_PORT = "5001"

SKIP, ANSWER_DEFAULTS, SERVER = "skip", "answer-defaults", "server"

# (pattern of a logical line, what the test does with it, why)
QUICKSTART_MAP: list[tuple[str, str, str]] = [
    (r"pip install kedro-mlflow-starter\b", SKIP,
     "the test venv has this checkout installed already (make venv: pip install -e .); "
     "a package index may not carry a release"),
    (r"pip install /path/to/", SKIP,
     "a fresh install from the checkout takes minutes; tests/test_starter_wheel.py builds and "
     "installs the wheel and generates the project from it"),
    (r'pip install "git\+https://', SKIP, "needs the network and the published repository"),
    (r"kedro new --starter=/path/to/", SKIP,
     "the same template read from the checkout: tests/test_starter.py::"
     "test_repo_path_git_url_interactive_and_name_flag_give_the_same_project"),
    (r"kedro new --starter=git\+https://", SKIP,
     "needs the network; tests/test_starter.py generates from the git URL of a local snapshot"),
    (r"kedro mlflow ui\b", SKIP,
     "a server that runs until Ctrl-C and opens a browser: tests/framework/test_cli.py::"
     "test_ui_serves_the_project_store starts it and reads the project's experiment from it"),
    (r"kedro new --starter=mlflow-iris\s*(#.*)?$", ANSWER_DEFAULTS,
     "interactive: Enter twice accepts the defaults the README names"),
    (r"mlflow models serve\b", SERVER, "a server: started in the background, stopped at the end"),
]


def section(markdown: str, heading: str) -> str:
    """The text of the ``## heading...`` section, up to the next ``## `` heading."""
    found = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert found, f"README has no '## {heading}' section"
    return found.group(1)


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, re.M | re.S)


def logical_lines(block: str) -> list[str]:
    """The commands of a block: continuation lines joined, blank lines and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


@dataclass
class Script:
    text: str
    skipped: list[tuple[str, str]]
    used_rules: set[str]
    ports: dict[str, int]


def shell_script(lines: list[str], rules: list[tuple[str, str, str]], log_dir: Path) -> Script:
    """A bash script running ``lines`` as a user would, with ``rules`` applied (see the module doc)."""
    port = free_port()
    out = ["set -euo pipefail", "servers=()", "trap 'kill ${servers[@]+\"${servers[@]}\"} 2>/dev/null || true' EXIT"]
    skipped, used, seen = [], set(), set()
    for line in lines:
        rule = next(((pattern, action, why) for pattern, action, why in rules if re.match(pattern, line)), None)
        bare = re.sub(r"\s+#.*$", "", line)
        if bare in seen and (rule is None or rule[1] != SKIP):
            rule = ("", SKIP, "the same command ran above (another way to the same step)")
        seen.add(bare)
        if rule is not None and rule[0]:
            used.add(rule[0])
        command = re.sub(rf"\b{README_PORT}\b", str(port), line)
        out.append(f"echo; echo {shlex.quote('::: ' + line)}")  # a line of its own, after any output
        if rule is None:
            out.append(command)
        elif rule[1] == SKIP:
            skipped.append((line, rule[2]))
            out.append(f"echo {shlex.quote('::: not run: ' + rule[2])}")
        elif rule[1] == ANSWER_DEFAULTS:
            out.append(f"printf '\\n\\n' | {command}")
        elif rule[1] == SERVER:
            log = log_dir / f"server-{port}.log"
            out += [
                f"{command} > {shlex.quote(str(log))} 2>&1 &",
                "servers+=($!)",
                f"for _ in $(seq 1 1500); do curl -sf http://127.0.0.1:{port}/ping > /dev/null && break; "
                f"kill -0 $! 2> /dev/null || {{ cat {shlex.quote(str(log))}; exit 1; }}; sleep 0.2; done",
                f"curl -sf http://127.0.0.1:{port}/ping > /dev/null",
            ]
    out.append("echo; echo '::: done'")
    return Script("\n".join(out) + "\n", skipped, used, {"serve": port})


def run_script(script: Script, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``script`` with bash in its own process group; stop whatever it left running."""
    process = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", script.text], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        _stop_group(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")


def _stop_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: this venv first on PATH, a home of its own, no index for pip."""
    home.mkdir(exist_ok=True)
    return project_env({"HOME": str(home), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                        "COLUMNS": "250", **extra})


def commands_run(output: str) -> list[str]:
    return re.findall(r"^::: (?!not run: |done$)(.*)$", output, re.M)


def output_after(output: str, command_prefix: str) -> str:
    """What the script printed after the echo of the first command starting with ``command_prefix``."""
    start = output.index(f"::: {command_prefix}")
    end = output.find("\n::: ", start + 4)
    return output[output.index("\n", start) + 1: end if end != -1 else None]


@dataclass
class Quickstart:
    folder: Path
    project: Path
    result: subprocess.CompletedProcess
    script: Script
    lines: list[str]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Quickstart:
    folder = tmp_path_factory.mktemp("quickstart")
    work = folder / "work"
    work.mkdir()
    text = section((REPO / "README.md").read_text(encoding="utf-8"), "Quickstart")
    lines = [line for block in bash_blocks(text) for line in logical_lines(block)]
    script = shell_script(lines, QUICKSTART_MAP, folder)
    result = run_script(script, cwd=work, env=user_env(folder / "home"))
    return Quickstart(folder, work / "iris-mlflow", result, script, lines)


def test_the_quickstart_commands_work_when_pasted(quickstart: Quickstart):
    result, lines = quickstart.result, quickstart.lines
    assert result.returncode == 0, f"a quickstart command failed:\n{result.stdout[-6000:]}"
    assert result.stdout.rstrip().endswith("::: done")

    # Every line was run, or skipped for a reason the map gives; every map entry is still needed.
    ran = commands_run(result.stdout)
    assert ran == lines
    assert {line for line, _ in quickstart.script.skipped} <= set(lines)
    unused = [pattern for pattern, _, _ in QUICKSTART_MAP if pattern not in quickstart.script.used_rules]
    assert not unused, f"QUICKSTART_MAP entries that no README line uses (remove them): {unused}"
    required = {
        "kedro new --starter=mlflow-iris": r"kedro new --starter=mlflow-iris\b",
        "kedro run": r"(cd \S+ && .*)?kedro run\b",
        "mlflow models serve": r"mlflow models serve\b",
        "a prediction request": r"curl .*/invocations",
    }
    skipped = {line for line, _ in quickstart.script.skipped}
    for what, pattern in required.items():
        assert any(re.match(pattern, line) and line not in skipped for line in lines), f"the quickstart must run {what}"

    # ... and did what the README says.
    project = quickstart.project
    assert (project / "conf/base/mlflow.yml").is_file() and (project / "mlflow.db").is_file()
    assert result.stdout.count(" FINISHED in experiment 'iris_mlflow'") == 2, result.stdout[-4000:]
    prediction = json.loads(output_after(result.stdout, "curl ").strip().splitlines()[-1])
    assert prediction["predictions"][0]["species"] == "setosa", prediction


def _demo():
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NEXT_MAP: list[tuple[str, str, str]] = [
    (r"kedro mlflow ui\b", SKIP, QUICKSTART_MAP[5][2]),
    (r"MLFLOW_TRACKING_URI=\S+ mlflow models serve\b", SERVER, "a server: started in the background"),
]


def test_each_block_make_demo_prints_runs_every_line_when_pasted(tmp_path: Path):
    """Issue 21: a command that serves until Ctrl-C ends its block, so a paste runs each line before it
    (the second run came after the blocking `kedro mlflow ui`, and never ran when pasted)."""
    demo = _demo()
    blocks = {"next": demo.next_steps(tmp_path, bin_dir=BIN),
              "serve": demo.serve_steps(tmp_path, "models:/m-0123", bin_dir=BIN)}
    for name, block in blocks.items():
        commands = [line.split("  # ")[0].strip() for line in block]
        blocking = [i for i, command in enumerate(commands) if any(b in command for b in demo.BLOCKING)]
        assert blocking == [len(commands) - 1], f"{name} block: a blocking command must be its last line: {block}"
        assert "blocks:" in block[-1], f"{name} block: the blocking line says so: {block[-1]}"
        assert commands[0].startswith("source ") and commands[1].startswith("cd "), block
    assert any(line.startswith("kedro run --params") for line in blocks["next"])
    assert "mlflow models serve" in blocks["serve"][-1]


def test_the_commands_make_demo_prints_work_in_a_new_shell(quickstart: Quickstart):
    """`make demo` ends with "Next, in a new shell": a shell without the venv on PATH."""
    from mlflow.tracking import MlflowClient

    assert quickstart.result.returncode == 0, "the quickstart failed: see the other test"
    client = MlflowClient(tracking_uri=f"sqlite:///{quickstart.project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("iris_mlflow")
    [model, *_] = client.search_logged_models([experiment.experiment_id], filter_string=f"name = '{_demo().PIPELINE_MODEL}'")
    demo = _demo()
    steps = demo.next_steps(quickstart.project, bin_dir=BIN) + demo.serve_steps(
        quickstart.project, f"models:/{model.model_id}", bin_dir=BIN)

    lines = [line.split("  # ")[0].strip() for line in steps]
    script = shell_script(lines, NEXT_MAP, quickstart.folder)
    serve_port = script.ports["serve"]
    check = ("\ncommand -v kedro\n"
             f"curl -sf http://127.0.0.1:{serve_port}/invocations -H 'Content-Type: application/json' "
             "-d '{\"dataframe_records\": [{\"sepal_length\": 6.7, \"sepal_width\": 3.0, "
             "\"petal_length\": 5.2, \"petal_width\": 2.3}]}'\n")
    # A new terminal: only the system's folders on PATH, so `kedro` is found only if a line says where.
    env = {"HOME": str(quickstart.folder / "home"), "PATH": "/usr/bin:/bin", "TMPDIR": os.environ["TMPDIR"],
           "KEDRO_DISABLE_TELEMETRY": "true", "LANG": "C.UTF-8", "COLUMNS": "250"}
    assert subprocess.run(["bash", "-c", "command -v kedro"], env=env, capture_output=True).returncode != 0

    result = run_script(Script(script.text.replace("echo; echo '::: done'\n", check + "echo; echo '::: done'\n"),
                               script.skipped, script.used_rules, script.ports),
                        cwd=quickstart.folder, env=env)

    assert result.returncode == 0, result.stdout[-6000:]
    assert commands_run(result.stdout) == lines
    assert f"{BIN}/kedro" in result.stdout
    assert " FINISHED in experiment 'iris_mlflow'" in result.stdout
    assert '"species": "virginica"' in result.stdout.replace('"species":"', '"species": "')


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of ``markdown`` (code blocks left out)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#{1,6} (.*)$", text, re.M)}


def test_every_link_between_the_readme_and_the_docs_resolves():
    """The README was split into docs/*.md: each relative link names a file and heading that exist."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
    # Every docs page is reachable from the README.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in pages[1:] if f"(docs/{p.name})" not in readme] == []
