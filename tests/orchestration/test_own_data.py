"""Your own data: a directory with only the contract's required tables and columns loads and ranks."""

from pathlib import Path

from psycopg import sql

from ml import data
from ml.contract import RAW_CONTRACT
from ml.features import DbtManifest
from orchestration import cli
from tests.conftest import use_database


def _required_only(frames: dict, directory: Path) -> None:
    """Write the required tables with their required columns only, plus each offer's percent off
    (an offer needs a discount: discount_pct when it is a percent offer, the default type)."""
    offers = frames["offers"]
    percent_off = offers["discount_pct"].fillna(100 * offers["reward_amount"] / offers["min_spend"]).round(2)
    frames = {**frames, "offers": offers.assign(discount_pct=percent_off)}
    for table in RAW_CONTRACT.tables:
        if table.required:
            columns = [column.name for column in table.columns if column.required]
            if table.name == "offers":
                columns.append("discount_pct")
            frames[table.name][columns].to_csv(directory / f"{table.name}.csv", index=False)


def test_required_columns_alone_load_and_the_pipeline_ranks(server, generated_data, dbt_manifest, tmp_path):
    settings = use_database(server, "own_data")
    _required_only(generated_data, tmp_path)
    assert not (tmp_path / "order_items.csv").exists()
    assert cli.main(["load", str(tmp_path)]) == 0
    assert cli.main(["run", "--no-reporting"]) == 0

    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        recommended = conn.execute(
            sql.SQL("select count(distinct customer_id) from {}").format(
                sql.Identifier(settings.ml_schema, "recommendations")
            )
        ).fetchone()[0]
        # Without order lines there are no basket contents: those features are null, not invented.
        tier_ratios = conn.execute(
            sql.SQL("select count(tier2_purchase_ratio), count(frequency) from {}").format(
                manifest.relation("fct_training_examples")
            )
        ).fetchone()
    assert recommended == len(generated_data["customers"])
    assert tier_ratios[0] == 0
    assert tier_ratios[1] > 0
