"""A plain `dbt build` (the profile's defaults, no vars) passes on generated data: models, data tests, unit tests."""

from tests.conftest import dbt, load_generated, use_database


def test_dbt_build_passes_on_generated_data(server, generated_data):
    settings = use_database(server, "dbt_build")
    load_generated(settings, generated_data)
    result = dbt("build", check=False)
    assert result.returncode == 0, result.stdout[-5000:]
    assert "ERROR=0" in result.stdout
