"""The one dbt project object that dagster-dbt and the CLI share."""

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from ml.config import PROFILES_DIR, WAREHOUSE_DIR

# dbt is installed beside this interpreter; dagster-dbt looks for it on PATH, which does not
# include the virtualenv when `.venv/bin/offerrank` or `.venv/bin/dagster` runs unactivated.
_interpreter_bin = str(Path(sys.executable).parent)
if _interpreter_bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_interpreter_bin, os.environ.get("PATH", "")])

warehouse_project = DbtProject(project_dir=WAREHOUSE_DIR, profiles_dir=PROFILES_DIR)
# Under `dagster dev` this runs `dbt parse` so the manifest always matches the SQL being edited.
warehouse_project.prepare_if_dev()
