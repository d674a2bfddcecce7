"""A plain `dbt build` (the profile's defaults, no vars) passes on generated data: models, data tests, unit tests.

It runs on a fresh database, before any Python stage has created the `ml` tables: the default
selector (warehouse/selectors.yml) leaves out the reporting models that read them, which
`dbt build --selector reporting` builds after a run.
"""

import json

from ml import data
from ml.config import dbt_target_path
from tests.conftest import REPORTING_MARTS, dbt, in_use


def test_dbt_build_passes_on_generated_data(built_warehouse):
    _, result = built_warehouse
    assert result.returncode == 0, result.stdout[-5000:]
    assert "ERROR=0" in result.stdout
    assert "fct_scoring_candidates" in result.stdout and "stg_ml__" not in result.stdout


def _listed(*selection: str) -> set[str]:
    result = dbt("ls", "--quiet", "--resource-type", "model", "--output", "name", *selection)
    return set(result.stdout.split())


def test_the_default_selection_leaves_out_exactly_the_reporting_models(dbt_manifest):
    manifest = json.loads((dbt_target_path() / "manifest.json").read_text())
    models = {node["name"]: node for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    # every model that reads an ml table, and every model downstream of one, is a reporting model
    reads_ml = {name for name, node in models.items() if any(".ml." in dep for dep in node["depends_on"]["nodes"])}
    assert {"stg_ml__recommendations", "stg_ml__eval_metrics"} <= reads_ml
    reporting = _listed("--selector", "reporting")
    assert reads_ml <= reporting
    assert set(REPORTING_MARTS) <= reporting
    # nothing outside the reporting build reads a reporting model (so none does downstream either)
    parents = {name: {dep.split(".")[-1] for dep in node["depends_on"]["nodes"]} for name, node in models.items()}
    assert not any(parents[name] & reporting for name in set(models) - reporting)

    # the off-policy window's models are built on demand, by their own selector
    off_policy = _listed("--selector", "off_policy")
    assert off_policy == {
        "int_impressions_labelled_with_propensities",
        "int_impressions_logged_in_window",
        "fct_logged_visit_candidates",
        "fct_served_impressions",
    }

    default = _listed()
    assert default and default.isdisjoint(reporting) and default.isdisjoint(off_policy)
    assert default | reporting | off_policy == set(models)


def test_the_unit_tests_of_the_reporting_and_off_policy_models_pass(built_warehouse):
    """The plain build above runs the default selection's unit tests, and a daily run runs none
    (it excludes them): the reporting and off-policy models' own run here. Unit tests need their
    inputs' columns, not their rows, so those models are built empty (`--empty`) first."""
    settings = in_use(built_warehouse)
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, settings.ml_schema, settings.reader_role)
    on_demand = ("--select", "tag:reporting tag:off_policy")
    built = dbt("run", *on_demand, "--empty", check=False)
    assert built.returncode == 0, built.stdout[-3000:]
    tested = dbt("test", *on_demand, "--resource-type", "unit_test", check=False)
    assert tested.returncode == 0, tested.stdout[-5000:]
    results = json.loads((dbt_target_path() / "run_results.json").read_text())["results"]
    unit_tests = {r["unique_id"].split(".")[2] for r in results if r["unique_id"].startswith("unit_test.")}
    assert set(REPORTING_MARTS) - {"fct_experiment_results"} | {"fct_logged_visit_candidates"} <= unit_tests
    assert all(result["status"] == "pass" for result in results if result["unique_id"].startswith("unit_test."))
