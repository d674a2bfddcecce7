"""The dbt SQL stays sqlfluff-clean (dbt templater, postgres dialect: warehouse/.sqlfluff)."""

import subprocess
import sys
from pathlib import Path

from ml.config import WAREHOUSE_DIR


def test_models_are_sqlfluff_clean(server):
    # The dbt templater compiles the project, which opens a connection: hence the test server.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sqlfluff"), "lint", "models", "tests", "--nocolor"],
        cwd=WAREHOUSE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
