"""The one dbt project object that dagster-dbt and the CLI share."""

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject
from filelock import FileLock

from ml.config import PROFILES_DIR, WAREHOUSE_DIR, dbt_target_path

# dbt is installed beside this interpreter; dagster-dbt looks for it on PATH, which does not
# include the virtualenv when `.venv/bin/offerrank` or `.venv/bin/dagster` runs unactivated.
_interpreter_bin = str(Path(sys.executable).parent)
if _interpreter_bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_interpreter_bin, os.environ.get("PATH", "")])

warehouse_project = DbtProject(project_dir=WAREHOUSE_DIR, profiles_dir=PROFILES_DIR, target_path=dbt_target_path())


class DbtParseError(RuntimeError):
    """`dbt parse` failed: the project has an error that dbt names."""


def parse_project() -> None:
    """Write the manifest of the project as it is now, the one the assets are defined from.

    `dbt parse` runs in this process through dbt's programmatic API: with dbt's partial parsing an
    unchanged project takes about two seconds, where the `dbt parse` subprocess of dagster-dbt's
    `prepare()` (interpreter start, a `dbt --version` subprocess, an adapter handle) takes 15.
    """
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            "parse",
            *("--project-dir", str(WAREHOUSE_DIR), "--profiles-dir", str(PROFILES_DIR)),
            *("--target-path", str(dbt_target_path()), "--quiet"),
        ]
    )
    if not result.success:
        raise DbtParseError(f"dbt parse of {WAREHOUSE_DIR} failed: {result.exception or 'see the errors above'}")


def prepare_if_dev() -> None:
    """Under `dagster dev`, parse the project so the manifest matches the SQL being edited.

    What dagster-dbt's `DbtProject.prepare_if_dev()` is for, in every process that loads the
    definitions there: the code server, and each run it launches, at its start. This parses in
    process (`parse_project`), and one process at a time: two runs of a backfill start together
    and share the target folder. A process that waited finds the manifest just written by the other
    and does not parse again.
    """
    if not os.environ.get("DAGSTER_IS_DEV_CLI"):  # what `dagster dev` sets for its processes
        return
    manifest = warehouse_project.manifest_path
    written_before = manifest.stat().st_mtime if manifest.exists() else None
    with FileLock(manifest.with_name("parse.lock")):
        if not manifest.exists() or manifest.stat().st_mtime == written_before:
            parse_project()


prepare_if_dev()
