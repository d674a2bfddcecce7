"""The one dbt project object that dagster-dbt and the CLI share."""

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from ml.config import PROFILES_DIR, WAREHOUSE_DIR, dbt_target_path

# dbt is installed beside this interpreter; dagster-dbt looks for it on PATH, which does not
# include the virtualenv when `.venv/bin/offerrank` or `.venv/bin/dagster` runs unactivated.
_interpreter_bin = str(Path(sys.executable).parent)
if _interpreter_bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_interpreter_bin, os.environ.get("PATH", "")])

warehouse_project = DbtProject(project_dir=WAREHOUSE_DIR, profiles_dir=PROFILES_DIR, target_path=dbt_target_path())
# Under `dagster dev` this runs `dbt parse` so the manifest always matches the SQL being edited.
warehouse_project.prepare_if_dev()


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
