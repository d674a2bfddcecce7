"""The whole daily run through Dagster on generated data: tables, grains, metrics, selection,
explanations, idempotency."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from psycopg import sql
from sklearn.metrics import brier_score_loss, log_loss, ndcg_score, roc_auc_score

from ml import data, pipeline
from ml.config import ALGORITHMS, Settings, load_rerank_config, load_training_config
from ml.evaluate import select_best
from ml.features import TRAINING_MODEL, DbtManifest
from ml.pipeline import Scorer
from orchestration import cli
from tests.conftest import load_generated, use_database

# Output table -> the columns of its grain.
GRAINS = {
    "model_registry": ["model_id"],
    "model_promotions": ["promoted_at", "model_id"],
    "feature_importance": ["model_id", "importance_type", "feature"],
    "offer_scores": ["score_date", "customer_id", "offer_id"],
    "recommendations": ["score_date", "customer_id", "rank"],
    "recommendation_explanations": ["score_date", "customer_id", "offer_id", "feature"],
    "eval_metrics": ["as_of_date", "model_id", "split", "metric", "k"],
    "pipeline_runs": ["run_id", "step"],
}


def _checksums(settings: Settings) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every output table that a re-run must not change."""
    with data.connect(settings) as conn:
        return {
            table: conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
                ).format(sql.Identifier(settings.ml_schema, table))
            ).fetchone()
            for table in GRAINS
            if table != "pipeline_runs"  # an audit log: every run adds its own rows
        }


@pytest.fixture(scope="module")
def demo_run(server: Settings, generated_world, dbt_manifest) -> dict:
    settings = use_database(server, "end_to_end")
    load_generated(settings, *generated_world)
    assert cli.main(["run"]) == 0
    first = _checksums(settings)
    # forced: the re-run retrains too, whatever the weekday, and must find the same models
    assert cli.main(["run", "--retrain"]) == 0
    return {"settings": settings, "first": first, "second": _checksums(settings)}


def test_every_output_table_is_written_with_its_grain(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        for table, grain in GRAINS.items():
            columns = sql.SQL(", ").join(map(sql.Identifier, grain))
            relation = sql.Identifier(settings.ml_schema, table)
            rows = conn.execute(sql.SQL("select count(*) from {}").format(relation)).fetchone()[0]
            duplicates = conn.execute(
                sql.SQL("select count(*) from (select {} from {} group by {} having count(*) > 1) d").format(
                    columns, relation, columns
                )
            ).fetchone()[0]
            assert rows > 0, table
            assert duplicates == 0, table


def _table(conn, settings: Settings, table: str, columns: list[str], where: str | None = None) -> pd.DataFrame:
    return data.read_relation(
        conn,
        sql.Identifier(settings.ml_schema, table),
        columns,
        where=sql.SQL(where) if where else None,
    )


def _recommendations_and_candidates(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommendations, and the scored candidates with the re-ranker's rule columns."""
    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        candidates = data.read_relation(
            conn,
            manifest.relation("fct_scoring_candidates"),
            ["customer_id", "offer_id", "offer_category", "has_redeemed_offer"],
        )
        scores = _table(
            conn, settings, "offer_scores", ["customer_id", "offer_id", "score", "raw_score", "rank", "ranked_by"]
        )
        recommendations = _table(
            conn, settings, "recommendations", ["customer_id", "offer_id", "rank", "score", "score_rank", "ranked_by"]
        )
    scored = scores.merge(candidates, on=["customer_id", "offer_id"], how="outer", validate="1:1", indicator=True)
    return recommendations, scored


def test_scores_cover_every_candidate_and_recommendations_obey_the_rules(demo_run):
    settings = demo_run["settings"]
    top_k, cap = settings.top_k, settings.rerank.max_per_category
    recommendations, scored = _recommendations_and_candidates(settings)
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
    assert champion is not None
    assert (scored["_merge"] == "both").all()  # every candidate is scored, and only candidates are
    assert set(scored["ranked_by"]) == {"model"}
    assert scored["score"].between(0, 1).all()
    assert scored["has_redeemed_offer"].any()  # the test world has offers to leave out

    picked = recommendations.merge(scored, on=["customer_id", "offer_id"], suffixes=("", "_scored"), validate="1:1")
    assert len(picked) == len(recommendations)
    assert (picked["score"] == picked["score_scored"]).all()
    assert (picked["score_rank"] == picked["rank_scored"]).all()
    assert (picked["ranked_by"] == picked["ranked_by_scored"]).all()
    assert not picked["has_redeemed_offer"].any()
    assert picked.groupby(["customer_id", "offer_category"]).size().max() <= cap
    ranks = recommendations.sort_values(["customer_id", "rank"]).groupby("customer_id")["rank"].apply(list)
    assert all(listed == list(range(1, len(listed) + 1)) for listed in ranks)
    # every customer gets as many as the rules allow: min(K, sum over categories of min(cap, eligible))
    eligible = scored[~scored["has_redeemed_offer"]]
    allowed = eligible.groupby(["customer_id", "offer_category"]).size().clip(upper=cap).groupby("customer_id").sum()
    expected = allowed.clip(upper=top_k)
    per_customer = recommendations.groupby("customer_id").size()
    pd.testing.assert_series_equal(per_customer.sort_index(), expected[expected > 0].sort_index(), check_names=False)
    # the default lambda does re-rank: some lists are not the score order
    assert (picked["rank"] != picked["score_rank"]).any()


def test_with_lambda_one_and_no_category_cap_recommendations_are_the_top_k_by_score(demo_run, monkeypatch):
    settings = demo_run["settings"]
    manifest = DbtManifest.load()
    monkeypatch.setenv("OFFERRANK_MMR_LAMBDA", "1")
    monkeypatch.setenv("OFFERRANK_MAX_PER_CATEGORY", "1000")
    stage = pipeline.StageRun(replace(settings, rerank=load_rerank_config()), f"rerank-{uuid.uuid4()}", manifest)
    restore = pipeline.StageRun(settings, f"rerank-{uuid.uuid4()}", manifest)
    try:
        pipeline.write_recommendations(stage)
        recommendations, scored = _recommendations_and_candidates(settings)
    finally:  # put the day's recommendations back as the run wrote them, and forget these stage logs
        pipeline.write_recommendations(restore)
        with data.connect(settings) as conn:
            conn.execute(
                sql.SQL("delete from {} where run_id = any(%s)").format(
                    sql.Identifier(settings.ml_schema, "pipeline_runs")
                ),
                ([stage.run_id, restore.run_id],),
            )
    eligible = scored[~scored["has_redeemed_offer"]].sort_values(["customer_id", "rank"])
    expected = eligible.groupby("customer_id").head(settings.top_k)
    expected = expected.assign(score_rank=expected["rank"], rank=expected.groupby("customer_id").cumcount() + 1)
    actual = recommendations.sort_values(["customer_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual, expected.reset_index(drop=True)[actual.columns], check_dtype=False)


def test_three_models_are_registered_and_the_best_on_the_primary_metric_is_champion(demo_run):
    settings = demo_run["settings"]
    config = load_training_config()
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        models = data.list_models(conn, settings.ml_schema)
        history = data.promotion_history(conn, settings.ml_schema)
        importance = _table(conn, settings, "feature_importance", ["model_id", "importance_type", "importance_rank"])
    assert sorted(models["algorithm"]) == sorted(ALGORITHMS)
    assert (models["status"] == "champion").sum() == 1
    best = select_best(
        {row.model_id: row.metrics for row in models.itertuples()}, config.primary_metric, config.tiebreak_metric
    )
    assert champion.model_id == best
    # provenance and calibration are recorded for the model that scores
    assert champion.manifest_hash == DbtManifest.load().content_hash()
    assert champion.code_version and champion.calibration["method"] == config.calibration
    assert champion.tune_start_date > champion.train_end_date and champion.valid_start_date > champion.tune_end_date
    # one promotion, by the first run; the re-run found the same champion
    assert history[["model_id", "previous_model_id", "action"]].values.tolist() == [[best, None, "promote"]]
    assert set(importance["model_id"]) == set(models["model_id"])
    lightgbm_types = importance[importance["model_id"].str.startswith("lgbm")]["importance_type"]
    assert {"gain", "split"} <= set(lightgbm_types)


def test_reported_metrics_equal_sklearn_on_the_same_predictions(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        reported = _table(
            conn,
            settings,
            "eval_metrics",
            ["model_id", "metric", "k", "value", "n_groups", "window_start_date", "window_end_date"],
        )
        reported = reported[reported["model_id"] == champion.model_id]
        start, end = reported["window_start_date"].iloc[0], reported["window_end_date"].iloc[0]
        valid = data.read_relation(
            conn,
            DbtManifest.load().relation(TRAINING_MODEL),
            ["customer_id", "label", *champion.features],
            where=sql.SQL("shown_date between %s and %s"),
            params=(start, end),
        )
    assert (start, end) == (champion.valid_start_date, champion.valid_end_date)
    scorer = Scorer.from_record(champion)
    raw = scorer.model.raw_scores(valid)
    probabilities = scorer.calibrator.predict(raw)
    labels = valid["label"].to_numpy()

    def value(metric: str, k: int | None = None) -> float:
        rows = reported[(reported["metric"] == metric) & (reported["k"].isna() if k is None else reported["k"] == k)]
        return rows["value"].item()

    assert value("roc_auc") == pytest.approx(roc_auc_score(labels, raw), rel=1e-9)
    assert value("log_loss") == pytest.approx(log_loss(labels, probabilities), rel=1e-6)
    assert value("brier") == pytest.approx(brier_score_loss(labels, probabilities), rel=1e-9)
    for k in (5, 10):
        per_customer = [
            ndcg_score([labels[mask]], [raw[mask]], k=k) if mask.sum() > 1 else 1.0
            for customer in np.unique(valid["customer_id"])
            if labels[mask := (valid["customer_id"] == customer).to_numpy()].sum() > 0
        ]
        assert value("ndcg", k) == pytest.approx(np.mean(per_customer), rel=1e-9)
    # The model has learnt something real from the generated signal.
    assert value("roc_auc") > 0.6


def test_candidates_champion_heuristic_and_oracle_share_one_window(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        metrics = data.validation_metrics(conn, settings.ml_schema, champion.trained_for_date)
        rows = _table(conn, settings, "eval_metrics", ["model_id", "metric", "n_rows", "window_start_date"])
    assert len(metrics) == len(ALGORITHMS) + 2  # the candidates, the heuristic and the oracle
    assert {"heuristic", "oracle", champion.model_id} <= set(metrics)
    auc_rows = rows[rows["metric"] == "roc_auc"]
    assert auc_rows["n_rows"].nunique() == 1 and auc_rows["window_start_date"].nunique() == 1
    assert metrics["oracle"]["ndcg@5"] > metrics[champion.model_id]["ndcg@5"] > metrics["heuristic"]["ndcg@5"]


def test_every_recommendation_is_explained_by_its_top_contributions(demo_run):
    settings = demo_run["settings"]
    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        explanations = _table(
            conn,
            settings,
            "recommendation_explanations",
            ["customer_id", "offer_id", "feature", "model_id", "contribution", "contribution_rank"],
        )
        recommendations = _table(conn, settings, "recommendations", ["customer_id", "offer_id"])
        candidates = data.read_relation(
            conn, manifest.relation("fct_scoring_candidates"), ["customer_id", "offer_id", *champion.features]
        )
    explained = explanations.groupby(["customer_id", "offer_id"])
    assert explained.ngroups == len(recommendations)
    assert (explained.size() == 3).all()
    assert set(explanations["model_id"]) == {champion.model_id}
    # the top 3 of the model's own per-feature contributions (TreeSHAP for LightGBM), recomputed
    pair = recommendations.iloc[0]
    row = candidates[(candidates["customer_id"] == pair.customer_id) & (candidates["offer_id"] == pair.offer_id)]
    contributions = Scorer.from_record(champion).model.contributions(row)[0, :-1]
    top = np.argsort(-np.abs(contributions), kind="stable")[:3]
    mine = explanations[(explanations["customer_id"] == pair.customer_id) & (explanations["offer_id"] == pair.offer_id)]
    mine = mine.sort_values("contribution_rank")
    assert mine["feature"].tolist() == [champion.features[i] for i in top]
    np.testing.assert_allclose(mine["contribution"], contributions[top], rtol=1e-9)


def test_rerunning_a_date_leaves_identical_rows(demo_run):
    assert demo_run["second"] == demo_run["first"]


def test_every_stage_is_logged(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        runs = conn.execute(
            sql.SQL(
                "select run_id, array_agg(step order by started_at), bool_and(status = 'success')"
                " from {} group by run_id"
            ).format(sql.Identifier(settings.ml_schema, "pipeline_runs"))
        ).fetchall()
    assert len(runs) == 2
    for _, steps, all_succeeded in runs:
        # evaluate and score both follow train, in either order; the reporting marts come last
        assert steps[:2] == ["dbt_build", "train"] and steps[-1] == "reporting"
        assert sorted(steps[2:-1]) == ["evaluate", "explain", "recommend", "score"]
        assert steps.index("explain") > steps.index("recommend") > steps.index("score")
        assert all_succeeded


def _mart(settings: Settings, model: str) -> pd.DataFrame:
    with data.connect(settings) as conn:
        return data.copy_out(conn, sql.SQL("select * from {}").format(DbtManifest.load().relation(model)))


def test_latest_recommendations_mart_holds_the_days_lists_with_offers_and_reasons(demo_run):
    settings = demo_run["settings"]
    mart = _mart(settings, "fct_latest_recommendations")
    with data.connect(settings) as conn:
        recommendations = _table(
            conn,
            settings,
            "recommendations",
            ["score_date", "customer_id", "rank", "offer_id", "score", "score_rank", "model_id", "ranked_by"],
        )
        explanations = _table(
            conn,
            settings,
            "recommendation_explanations",
            ["score_date", "customer_id", "offer_id", "feature", "contribution", "contribution_rank", "feature_value"],
        )
        offers = data.read_relation(
            conn, DbtManifest.load().relation("int_offers_joined_to_products"), ["offer_id", "category"]
        )
    latest = recommendations[recommendations["score_date"] == recommendations["score_date"].max()]
    keys = ["customer_id", "rank"]
    joined = latest.merge(mart, on=keys, how="outer", suffixes=("", "_mart"), validate="1:1", indicator=True)
    assert len(mart) == len(latest) > 0 and (joined["_merge"] == "both").all()
    for column in ("score_date", "offer_id", "score", "score_rank", "model_id", "ranked_by"):
        assert (joined[column] == joined[f"{column}_mart"]).all(), column
    categories = joined.merge(offers, on="offer_id", validate="m:1")
    pd.testing.assert_series_equal(
        categories["offer_category"], categories["category"], check_names=False, check_dtype=False
    )
    # reason n is the explanation of contribution_rank n
    for n in (1, 2, 3):
        reason = explanations[explanations["contribution_rank"] == n].rename(
            columns={
                "feature": f"reason_{n}_feature",
                "contribution": f"reason_{n}_contribution",
                "feature_value": f"reason_{n}_value",
            }
        )
        columns = [f"reason_{n}_feature", f"reason_{n}_contribution", f"reason_{n}_value"]
        expected = joined.merge(reason, on=["score_date", "customer_id", "offer_id"], suffixes=("_mart", ""))
        assert len(expected) == len(mart)
        for column in columns:
            assert (expected[column].fillna("null") == expected[f"{column}_mart"].fillna("null")).all(), column
    first = mart.iloc[0]
    assert first["reasons"].startswith(f"{first['reason_1_feature']}=") and first["reasons"].count("; ") == 2


def test_model_performance_mart_sets_each_scorer_beside_the_oracle(demo_run):
    settings = demo_run["settings"]
    mart = _mart(settings, "fct_model_performance_daily")
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        models = data.list_models(conn, settings.ml_schema)
        metrics = _table(conn, settings, "eval_metrics", ["as_of_date", "model_id", "metric", "k", "value"])
    assert len(mart) == len(metrics) > 0
    ndcg5 = mart[mart["metric_label"] == "ndcg@5"].set_index("model_id")
    assert ndcg5.loc[champion.model_id, "scorer_role"] == "champion"
    assert ndcg5.loc[champion.model_id, "is_serving"]
    assert set(ndcg5[ndcg5["scorer_role"] == "candidate"].index) == set(models["model_id"]) - {champion.model_id}
    assert ndcg5.loc["oracle", "scorer_role"] == "oracle" and ndcg5.loc["heuristic", "scorer_role"] == "heuristic"
    values = metrics[(metrics["metric"] == "ndcg") & (metrics["k"].fillna(0) == 5)].set_index("model_id")["value"]
    assert (ndcg5["metric_value"] == values.reindex(ndcg5.index)).all()
    assert (ndcg5["oracle_value"] == values["oracle"]).all() and (ndcg5["heuristic_value"] == values["heuristic"]).all()
    np.testing.assert_allclose(ndcg5["gap_to_oracle"], values["oracle"] - ndcg5["metric_value"])
    assert ndcg5.loc[champion.model_id, "gap_to_oracle"] > 0
    # a loss: the gap is the other way round, and still positive when worse
    losses = mart[(mart["metric_label"] == "log_loss") & (mart["scorer_role"] == "champion")]
    np.testing.assert_allclose(losses["gap_to_oracle"], losses["metric_value"] - losses["oracle_value"])


def test_the_report_shows_every_plot_of_the_run(demo_run, tmp_path):
    settings = demo_run["settings"]
    # the evaluation asset wrote the run date's report; the command writes it anywhere
    assert list((settings.home / "reports").glob("report-*.html"))
    output = tmp_path / "report.html"
    assert cli.main(["report", "--output", str(output)]) == 0
    page = output.read_text()
    for title in ("NDCG@k by model", "ROC curve", "Precision-recall curve", "Gain and lift", "Calibration",
                  "Feature importance"):  # fmt: skip
        assert f"<h2>{title}</h2>" in page
    images = page.count('src="data:image/png;base64,')
    assert images == 6
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
    assert champion.model_id in page and "oracle" in page
    assert cli.main(["report", "--date", "2001-01-01", "--output", str(output)]) == 1
