"""The `offerrank` command and the code location as `dagster dev` finds it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.config import PROJECT_ROOT, load_settings
from orchestration import cli


def test_db_status_and_url(server, capsys):
    assert cli.main(["db", "status"]) == 0
    assert "running: pid" in capsys.readouterr().out
    assert cli.main(["db", "url"]) == 0
    database = load_settings().database
    assert capsys.readouterr().out.strip() == f"postgresql://postgres@127.0.0.1:{database.port}/{database.dbname}"


def test_a_malformed_date_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--date", "2026-13-01"])
    assert exit_info.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_dagster_finds_the_code_location_from_the_repository_root(server, dbt_manifest, tmp_path: Path):
    # `dagster dev` loads the same thing: [tool.dagster] in pyproject.toml.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DAGSTER_HOME": str(tmp_path),
            "PGPORT": str(server.database.port),
            # where `dbt_manifest` parsed the project (a folder per worker under pytest-xdist)
            **{name: value for name, value in os.environ.items() if name == "DBT_TARGET_PATH"},
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful for code location offerrank" in result.stderr + result.stdout


def test_pghost_points_everything_at_another_server(server, monkeypatch, capsys):
    # The test server stands in for "another PostgreSQL": reached through PG* variables alone.
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGDATABASE", "postgres")
    assert cli.main(["db", "status"]) == 0
    assert "PGHOST is set" in capsys.readouterr().out
    assert cli.main(["db", "start"]) == 1
    assert cli.main(["generate", "--customers", "50", "--products", "20", "--offers", "5", "--days", "20"]) == 0
    assert "customers" in capsys.readouterr().out
