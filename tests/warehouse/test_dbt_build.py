"""A plain `dbt build` (the profile's defaults, no vars) passes on generated data: models, data tests, unit tests."""


def test_dbt_build_passes_on_generated_data(built_warehouse):
    _, result = built_warehouse
    assert result.returncode == 0, result.stdout[-5000:]
    assert "ERROR=0" in result.stdout
