"""The scoring candidates' features, computed for one as-of date (`one_as_of_date=true`: each
customer's category spend and products bought are one aggregate of the window's days), equal
those of the general path that the impressions and the logged visits take (each pair's own
customer, category and product joined to its window), on the built test world's run date."""

from __future__ import annotations

import pytest
from psycopg import sql

from ml import data
from ml.features import CANDIDATES_MODEL, DbtManifest
from tests.conftest import dbt, in_use, model_sql
from tests.warehouse.plans import joins_above, model_plan, plan_nodes

# the candidates as fct_scoring_candidates selects them, through the general path
GENERAL_PATH_CANDIDATES = """
with run_date_pairs as (select * from {{ ref('int_customers_paired_with_offers') }}),
{{ candidate_features('run_date_pairs', one_as_of_date=false) }}
select * from candidates
"""


@pytest.fixture(scope="module")
def general_path_sql(built_warehouse) -> str:
    in_use(built_warehouse)
    compiled = dbt("compile", "--quiet", "--inline", GENERAL_PATH_CANDIDATES).stdout
    assert "needed_customer_categories" in compiled  # the general path, not the one-date one
    return compiled


def test_one_date_path_gives_the_general_paths_rows(built_warehouse, general_path_sql):
    settings, _ = built_warehouse
    candidates = DbtManifest.load().relation(CANDIDATES_MODEL)
    with data.connect(settings) as conn:
        conn.execute(sql.SQL("create temporary table general_path as {}").format(sql.SQL(general_path_sql)))
        count, bought, with_category_spend = conn.execute(
            "select count(*), sum(bought_product_before), count(*) filter (where category_affinity_score > 0)"
            " from general_path"
        ).fetchone()
        only_general, only_one_date = (
            conn.execute(
                sql.SQL("select count(*) from (select * from {} except all select * from {}) as unmatched").format(
                    left, right
                )
            ).fetchone()[0]
            for left, right in [
                (sql.Identifier("general_path"), candidates),
                (candidates, sql.Identifier("general_path")),
            ]
        )
    # the comparison covers pairs whose customer bought the offer's product or its category
    assert count > 1000 and bought > 100 and with_category_spend > 1000
    assert (only_general, only_one_date) == (0, 0)


def test_every_join_of_the_run_dates_candidates_can_run_in_a_parallel_worker(built_warehouse, dbt_manifest):
    """The candidates' plan, under the model's pre-hook, scans no CTE: a CTE scan cannot run in a
    parallel worker, and every join above one ran in the leader alone (at 100k customers the
    model's `create table as` took 22-25 s, against 14-17 s with every join in the workers;
    docs/performance.md, "the candidates' joins all in the workers")."""
    settings = in_use(built_warehouse)
    dbt("compile", "--quiet", "--select", CANDIDATES_MODEL)
    with data.connect(settings) as conn:
        plan = model_plan(conn, dbt_manifest, CANDIDATES_MODEL, model_sql("marts", CANDIDATES_MODEL))
    scanned = sorted({node["CTE Name"] for node in plan_nodes(plan) if node["Node Type"] == "CTE Scan"})
    assert not scanned, f"CTE scans of {scanned}: {plan}"


def test_impressions_category_days_are_hashed_against_the_pairs_customers(built_warehouse, dbt_manifest):
    """The impressions' features (the general path) read the window's category days of the pairs'
    customers alone, through a hash join against them. At 100k customers a daily run's one date
    of impressions (13k customers) sorted every customer's 3.5M category days to disk without it;
    as a nested loop over the pairs' customers, it once took 60 s of a 2,000-customer full build
    (docs/performance.md, "the demo-scale full build")."""
    settings = in_use(built_warehouse)
    model = "feat_customer_offer_daily"
    dbt("compile", "--quiet", "--select", model)
    with data.connect(settings) as conn:
        plan = model_plan(conn, dbt_manifest, model, model_sql("marts", model))
    joins = joins_above(plan, "int_order_items_summed_to_customer_category_days")
    assert joins, f"no join above the category days: {plan}"
    nearest = joins[-1]
    pair_customers_scanned = any(node.get("CTE Name") == "pair_customers" for node in plan_nodes(nearest))
    assert (nearest["Node Type"], pair_customers_scanned) == ("Hash Join", True), nearest
