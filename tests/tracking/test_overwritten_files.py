"""Two `kedro run`s at once in one project write the same files: the run that reads back a file the
other run rewrote says so (tracking/overwritten_files.py). Two real processes, forked from the test
process, held by a project hook until both have saved the file."""

from __future__ import annotations

import shutil
from pathlib import Path

from kedro_mlflow_starter.tracking.overwritten_files import OVERWRITTEN_TAG
from tests.project_factory import make_project, start_kedro_in_fork
from tests.tracking_helpers import only_run, output, runs_of

SAVE_BARRIER = '''
import os
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl


class SaveBarrier:
    """Hold each run after it saved 'doubled' until both runs have saved it."""

    @hook_impl
    def after_dataset_saved(self, dataset_name, data, node):
        folder = os.environ.get("SAVE_BARRIER")
        if folder and dataset_name == "doubled":
            Path(folder, str(os.getpid())).touch()
            deadline = time.monotonic() + 60
            while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
'''


def test_of_two_runs_at_once_the_one_whose_file_the_other_rewrote_says_so(tmp_path: Path, migrated_db: Path):
    project = make_project(tmp_path, settings="from .barrier import SaveBarrier\n\nHOOKS = (SaveBarrier(),)\n")
    project.write(f"src/{project.package}/barrier.py", SAVE_BARRIER)
    shutil.copy(migrated_db, project.db)
    barrier = tmp_path / "barrier"
    barrier.mkdir()

    started = [start_kedro_in_fork("run", "--params", f"factor={factor}", cwd=project.path,
                                   env={"SAVE_BARRIER": str(barrier)}, log=tmp_path / f"run-{factor}.log")
               for factor in (2, 3)]
    results = [process.wait() for process in started]

    for result in results:
        assert result.returncode == 0, result.stdout
    tags = {run.data.params["factor"]: run.data.tags.get(OVERWRITTEN_TAG) for run in runs_of(project)}
    assert sorted(tags) == ["2", "3"] and sorted(tag is None for tag in tags.values()) == [False, True], \
        f"exactly one of the two runs read back a file the other wrote: {tags}"
    doubled = project.path / "data" / "02_intermediate" / "doubled.csv"
    for factor, result in zip(("2", "3"), results):
        told = "changed on disk after this run saved it" in result.stdout
        assert told == bool(tags[factor]), result.stdout
        summary = "this run read back doubled, which another process rewrote after this run saved it"
        assert (summary in " ".join(result.stdout.split())) == told, result.stdout
        assert tags[factor] in (None, f"doubled ({doubled})")

def test_a_run_alone_reads_its_own_files_and_is_not_tagged(project):
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    assert OVERWRITTEN_TAG not in only_run(project).data.tags
    assert "changed on disk" not in output(result)
