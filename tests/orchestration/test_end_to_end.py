"""The whole daily run through Dagster on generated data: tables, grains, metrics, selection,
explanations, idempotency, and that the run's password leaks nowhere."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from dagster import DagsterInstance, serialize_value
from psycopg import sql
from sklearn.metrics import brier_score_loss, log_loss, ndcg_score, roc_auc_score

from ml import data, heuristic, pipeline
from ml.config import (
    ALGORITHMS,
    PROJECT_ROOT,
    RerankConfig,
    Settings,
    dbt_target_path,
    load_rerank_config,
    load_settings,
    load_training_config,
)
from ml.evaluate import select_best
from ml.features import CANDIDATES_MODEL, OFFER_FEATURES_MODEL, TRAINING_MODEL, DbtManifest
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
    "eval_metrics": ["as_of_date", "model_id", "split", "segment", "ordering", "metric", "k"],
    "feature_drift": ["as_of_date", "model_id", "feature"],
    "drift_reference": ["reference_date", "feature"],
    "experiment_assignments": ["experiment_id", "customer_id"],
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
            # pipeline_runs is an audit log: every run adds its own rows; feature_drift compares with
            # the champion, which the first run of a fresh database does not have yet
            if table not in ("pipeline_runs", "feature_drift")
        }


# The run logs in as production does: a role of its own, owning its database, with a password the
# server checks. The embedded test server trusts every other login; this one gets a scram-sha-256
# line of its own in pg_hba.conf, so the password is really sent and really needed.
RUN_LOGIN = "offerrank_run"


def _refuses(conninfo: str) -> bool:
    try:
        psycopg.connect(conninfo, connect_timeout=10).close()
    except psycopg.OperationalError:
        return True
    return False


@contextlib.contextmanager
def _password_login(server: Settings, database: str) -> Iterator[str]:
    """Make RUN_LOGIN, with a new random password, the owner of `database`; yields the password."""
    token = secrets.token_hex(16)
    # A space, quotes and a backslash: each form of a connection string quotes or escapes them
    # differently, while the token inside stays one findable run of hex digits.
    password = f'{token} it\'s "secret" \\ '
    without_password = replace(server.database, user=RUN_LOGIN, dbname=database)
    with psycopg.connect(server.database.conninfo(dbname="postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("create role {} login password {}").format(sql.Identifier(RUN_LOGIN), sql.Literal(password))
        )
        admin.execute(
            sql.SQL("alter database {} owner to {}").format(sql.Identifier(database), sql.Identifier(RUN_LOGIN))
        )
        # The run's login may not create roles: the reader role exists beforehand, as the README asks.
        data.ensure_reader_role(admin, server.reader_role)
        hba = Path(admin.execute("show hba_file").fetchone()[0])
        trusting = hba.read_text()
        hba.write_text(f"host all {RUN_LOGIN} 127.0.0.1/32 scram-sha-256\n{trusting}")
        admin.execute("select pg_reload_conf()")
        try:
            deadline = time.monotonic() + 10  # the server rereads pg_hba.conf after a signal, not at once
            while not _refuses(without_password.conninfo()) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _refuses(without_password.conninfo()), "the server still trusts the run's login"
            assert _refuses(replace(without_password, password=f"not {token}").conninfo())
            yield password
        finally:
            hba.write_text(trusting)
            admin.execute("select pg_reload_conf()")


@contextlib.contextmanager
def _captured_output(into: list[str]) -> Iterator[None]:
    """Append to `into` all the block writes to stdout and stderr, from Python or from child processes."""
    sys.stdout.flush()
    sys.stderr.flush()
    python = io.StringIO()
    with tempfile.TemporaryFile() as descriptors:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(descriptors.fileno(), 1)
        os.dup2(descriptors.fileno(), 2)
        try:
            with contextlib.redirect_stdout(python), contextlib.redirect_stderr(python):
                yield
        finally:
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
            descriptors.seek(0)
            into.append(descriptors.read().decode(errors="replace") + python.getvalue())


@pytest.fixture(scope="module")
def demo_run(server: Settings, generated_world, dbt_manifest) -> Iterator[dict]:
    use_database(server, "end_to_end")
    started = time.time()
    output: list[str] = []
    with _password_login(server, "end_to_end") as password, pytest.MonkeyPatch.context() as env:
        env.setenv("PGUSER", RUN_LOGIN)
        env.setenv("PGPASSWORD", password)
        settings = load_settings()
        load_generated(settings, *generated_world)
        with _captured_output(output):
            code = cli.main(["run"])
        assert code == 0, output[-1][-5000:]
        first = _checksums(settings)
        first_drift = _drift_rows(settings)
        # Re-run the date, forced: it retrains too, whatever the weekday, and must find the same
        # models; meanwhile a second re-run that will not wait for it stops.
        reruns = _rerun_at_once(settings)
        output += [rerun.output for rerun in reruns.values()]
        yield {
            "settings": settings,
            "first": first,
            "second": _checksums(settings),
            "reruns": reruns,
            "first_drift": first_drift,
            "password": password,
            "token": password.split()[0],
            "started": started,
            "output": output,
        }


@dataclass
class Rerun:
    returncode: int
    output: str


def _rerun_at_once(settings: Settings) -> dict[str, Rerun]:
    """Two `offerrank run --retrain` of the run date in two processes: `rerun`, and once it holds
    the run lock, `impatient` (OFFERRANK_LOCK_WAIT_SECONDS=0). (That a run which waits gets the
    lock once the holder is done is shown between processes in tests/ml/test_run_lock.py.)"""
    run = [str(Path(sys.executable).parent / "offerrank"), "run", "--retrain"]
    env = dict(os.environ)
    started = {"rerun": subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)}
    try:
        deadline = time.monotonic() + 180
        with data.connect(settings) as conn:
            while data.run_lock_holder(conn, settings.ml_schema) is None:
                assert started["rerun"].poll() is None and time.monotonic() < deadline, "no run took the lock"
                time.sleep(0.2)
        started["impatient"] = subprocess.Popen(
            run,
            env={**env, "OFFERRANK_LOCK_WAIT_SECONDS": "0"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        outputs = {name: process.communicate(timeout=900)[0] for name, process in started.items()}
    finally:
        for process in started.values():
            process.kill()
    return {name: Rerun(started[name].returncode, output) for name, output in outputs.items()}


def _drift_rows(settings: Settings) -> int:
    with data.connect(settings) as conn:
        return conn.execute(
            sql.SQL("select count(*) from {}").format(sql.Identifier(settings.ml_schema, "feature_drift"))
        ).fetchone()[0]


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
        pipeline.score_and_recommend(stage)
        recommendations, scored = _recommendations_and_candidates(settings)
    finally:  # put the day's recommendations back as the run wrote them, and forget these stage logs
        pipeline.score_and_recommend(restore)
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
            where="segment = 'all' and ordering = 'raw'",
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
        rows = _table(
            conn, settings, "eval_metrics", ["model_id", "metric", "n_rows", "window_start_date"], "segment = 'all'"
        )
    assert len(metrics) == len(ALGORITHMS) + 2  # the candidates, the heuristic and the oracle
    assert {"heuristic", "oracle", champion.model_id} <= set(metrics)
    auc_rows = rows[rows["metric"] == "roc_auc"]
    assert auc_rows["n_rows"].nunique() == 1 and auc_rows["window_start_date"].nunique() == 1
    assert metrics["oracle"]["ndcg@5"] > metrics[champion.model_id]["ndcg@5"] > metrics["heuristic"]["ndcg@5"]


def test_every_scorer_has_served_and_segment_metrics_whose_customers_add_up(demo_run):
    settings = demo_run["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        rows = _table(
            conn,
            settings,
            "eval_metrics",
            ["as_of_date", "model_id", "segment", "ordering", "metric", "k", "value", "n_rows", "n_groups"],
        )
    rows = rows[rows["as_of_date"] == champion.trained_for_date]
    mine = rows[rows["model_id"] == champion.model_id]
    segments = set(mine["segment"]) - {"all"}
    assert segments and all(segment.startswith("business_type=") for segment in segments)
    assert set(mine["ordering"]) == {"raw", "served"}
    for scorer in (champion.model_id, "heuristic", "oracle"):
        served = rows[(rows["model_id"] == scorer) & (rows["ordering"] == "served")]
        assert {"ndcg", "precision", "recall", "map", "margin_lift", "coverage", "diversity"} <= set(served["metric"])
    # customers and rows of the segments add up to all customers, for every per-customer metric
    keys = ["model_id", "ordering", "metric", "k"]
    per_customer = rows[rows["n_groups"].notna()]
    by_segment = per_customer[per_customer["segment"] != "all"].groupby(keys, dropna=False)[["n_rows", "n_groups"]]
    overall = per_customer[per_customer["segment"] == "all"].set_index(keys)[["n_rows", "n_groups"]]
    pd.testing.assert_frame_equal(by_segment.sum().sort_index(), overall.sort_index(), check_dtype=False)
    lift = rows[(rows["metric"] == "margin_lift") & (rows["segment"] == "all")]
    assert (lift[lift["model_id"] == "heuristic"]["value"] == 0).all()
    assert (lift[lift["model_id"] == "oracle"]["value"] > 0).all()


def test_served_metrics_with_lambda_one_and_no_binding_cap_equal_the_raw_ones(demo_run):
    settings = demo_run["settings"]
    manifest = DbtManifest.load()
    config = load_training_config()
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        columns = [*champion.features, *heuristic.FEATURES, *pipeline.evaluation_columns(manifest, config)]
        window = (champion.valid_start_date, champion.valid_end_date)
        examples = pipeline.read_examples(conn, manifest, list(dict.fromkeys(columns)), window)
        # the heuristic and the oracle too: each is re-ranked on the score its rows would carry
        predictions = pipeline.reference_predictions(conn, settings, examples)
    scorer = Scorer.from_record(champion)
    predictions[champion.model_id] = pipeline.model_predictions(scorer.model, scorer.calibrator, examples)
    no_rules = RerankConfig(mmr_lambda=1.0, max_per_category=1000)
    for scorer_id, rows in pipeline.evaluate_window(examples, predictions, config, no_rules).items():
        metrics = pd.DataFrame(rows)
        if scorer_id == heuristic.HEURISTIC_ID:
            # An offer shown on several days ties with itself under the heuristic: raw NDCG averages
            # the gains of tied scores (scikit-learn's convention), while a served list has one order.
            metrics = metrics[metrics["metric"] != "ndcg"]
        served = metrics[metrics["ordering"] == "served"].set_index(["segment", "metric", "k"])["value"]
        raw = metrics[metrics["ordering"] == "raw"].set_index(["segment", "metric", "k"])["value"]
        pd.testing.assert_series_equal(served, raw.loc[served.index], rtol=1e-9, obj=scorer_id)
    # the default re-ranking does change the lists: more diverse than the raw order
    with data.connect(settings) as conn:
        written = data.validation_metrics(conn, settings.ml_schema, champion.trained_for_date, "served")
        raw_written = data.validation_metrics(conn, settings.ml_schema, champion.trained_for_date)
    assert written[champion.model_id]["diversity@5"] > raw_written[champion.model_id]["diversity@5"]


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


def test_a_run_of_the_same_date_meanwhile_stops_naming_the_run_that_holds_the_warehouse(demo_run):
    """While the re-run holds the warehouse, a run that will not wait stops at once with a message
    naming it and writes nothing: the rows are those of one run (the test above)."""
    settings, reruns = demo_run["settings"], demo_run["reruns"]
    assert reruns["rerun"].returncode == 0, reruns["rerun"].output[-3000:]
    impatient = reruns["impatient"]
    assert impatient.returncode == 1, impatient.output[-3000:]
    assert "another offerrank run holds the warehouse" in impatient.output
    assert "Waited 0 s (OFFERRANK_LOCK_WAIT_SECONDS); run again once it has finished." in impatient.output
    with data.connect(settings) as conn:
        run_date = pipeline.run_date(conn, DbtManifest.load())
    assert f"for {run_date} (server pid" in impatient.output


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
        # drift comes before train (it can trigger it); evaluate and score both follow train, in either
        # order; the reporting marts come last
        assert steps[:3] == ["dbt_build", "drift", "train"] and steps[-1] == "reporting"
        assert sorted(steps[3:-1]) == ["evaluate", "explain", "score"]
        assert steps.index("explain") > steps.index("score")
        assert all_succeeded


def test_the_runs_dbt_builds_reuse_the_project_s_parse(demo_run):
    """The run date reaches dbt in the environment (orchestration/dbt_builds.py), so no dbt build of
    the runs parses the whole project again, as one given the run date in `--vars` does: each
    reuses the parse dagster-dbt copies into its target path."""
    invocation_logs = [
        path
        for path in _files([dbt_target_path()], since=demo_run["started"])
        if path.name == "dbt.log" and path.parent != dbt_target_path()
    ]
    assert len(invocation_logs) >= 4  # the features and the reporting build of each run
    assert [path for path in invocation_logs if "Unable to do partial parsing" in path.read_text()] == []


def test_the_second_run_measures_no_drift_against_the_same_days_reference(demo_run):
    settings = demo_run["settings"]
    assert demo_run["first_drift"] == 0  # the first run of a fresh database has no champion to compare with
    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        drift = _table(
            conn,
            settings,
            "feature_drift",
            ["as_of_date", "model_id", "feature", "kind", "psi", "ks", "n_reference", "n_current", "reference_date",
             "is_in_signal"],
        )  # fmt: skip
        messages = conn.execute(
            sql.SQL("select message from {} where step = 'drift' order by started_at").format(
                sql.Identifier(settings.ml_schema, "pipeline_runs")
            )
        ).fetchall()
        candidates = conn.execute(
            sql.SQL("select count(*) from {}").format(manifest.relation(CANDIDATES_MODEL))
        ).fetchone()[0]
    assert sorted(drift["feature"]) == sorted(champion.features)
    assert set(drift["model_id"]) == {champion.model_id}
    # The re-run of the champion's own training date compares the same sample of the same
    # candidates, stored by training and read back today: every bin and every CDF agree.
    assert set(drift["as_of_date"]) == set(drift["reference_date"]) == {champion.trained_for_date}
    assert (drift["psi"] == 0).all()
    numeric = drift["kind"] == "numeric"
    assert set(drift.loc[~numeric, "feature"]) == set(champion.categorical_features)
    assert (drift.loc[numeric, "ks"] == 0).all() and drift.loc[~numeric, "ks"].isna().all()
    # the offer-level features follow the day's catalogue and stay out of the signal
    offer_level = set(manifest.mart_feature_columns(OFFER_FEATURES_MODEL))
    assert offer_level and set(drift.loc[~drift["is_in_signal"], "feature"]) == offer_level & set(champion.features)
    sampled = min(candidates, load_training_config().drift_sample_rows)
    assert set(drift["n_reference"]) == set(drift["n_current"]) == {sampled}
    assert len(messages) == 2 and messages[0][0] == "no champion: nothing to compare"
    assert messages[1][0].startswith("largest drift ") and ": PSI 0.000" in messages[1][0]


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
            [
                "score_date",
                "customer_id",
                "rank",
                "offer_id",
                "score",
                "score_rank",
                "model_id",
                "ranked_by",
                "variant",
            ],
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
    for column in ("score_date", "offer_id", "score", "score_rank", "model_id", "ranked_by", "variant"):
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
        metrics = _table(
            conn, settings, "eval_metrics", ["as_of_date", "model_id", "segment", "ordering", "metric", "k", "value"]
        )
    assert len(mart) == len(metrics) > 0
    # one date (the re-run replaced the first run's rows); the headline slice: all customers, raw order
    headline = (mart["segment"] == "all") & (mart["ordering"] == "raw")
    metrics = metrics[(metrics["segment"] == "all") & (metrics["ordering"] == "raw")]
    ndcg5 = mart[headline & (mart["metric_label"] == "ndcg@5")].set_index("model_id")
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
    losses = mart[headline & (mart["metric_label"] == "log_loss") & (mart["scorer_role"] == "champion")]
    np.testing.assert_allclose(losses["gap_to_oracle"], losses["metric_value"] - losses["oracle_value"])


def test_the_report_shows_every_plot_of_the_run(demo_run, tmp_path):
    settings = demo_run["settings"]
    # the evaluation asset wrote the run date's report; the command writes it anywhere
    assert list((settings.home / "reports").glob("report-*.html"))
    output = tmp_path / "report.html"
    assert cli.main(["report", "--output", str(output)]) == 0
    page = output.read_text()
    # the second run measured the date's drift against the champion: its plot is the seventh
    for title in ("NDCG@k by model", "ROC curve", "Precision-recall curve", "Gain and lift", "Calibration",
                  "Feature importance", "Feature drift"):  # fmt: skip
        assert f"<h2>{title}</h2>" in page
    images = page.count('src="data:image/png;base64,')
    assert images == 7
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
    assert champion.model_id in page and "oracle" in page
    assert cli.main(["report", "--date", "2001-01-01", "--output", str(output)]) == 1


def test_feature_drift_mart_marks_each_dates_drift_signal(demo_run):
    settings = demo_run["settings"]
    mart = _mart(settings, "fct_feature_drift_daily")
    with data.connect(settings) as conn:
        drift = _table(conn, settings, "feature_drift", ["as_of_date", "feature", "psi", "is_in_signal"])
        signal = data.drift_signal(conn, settings.ml_schema, drift["as_of_date"].max())
    joined = drift.merge(mart, on=["as_of_date", "feature"], suffixes=("", "_mart"), validate="1:1")
    assert len(joined) == len(mart) == len(drift) > 0
    assert (joined["psi"] == joined["psi_mart"]).all()
    # the one signal row per date holds the value the retraining policy was given
    signals = mart[mart["is_drift_signal"]]
    assert len(signals) == mart["as_of_date"].nunique()
    assert signals["is_in_signal"].all() and signals["psi"].tolist() == [signal]
    assert set(mart["psi_band"]) <= {"stable", "moderate", "significant"}
    assert sorted(mart["psi_rank"]) == list(range(1, len(mart) + 1))


# --- the run's password ------------------------------------------------------------------------


def test_the_run_built_everything_as_its_password_protected_login(demo_run):
    settings = demo_run["settings"]
    assert (settings.database.user, settings.database.password) == (RUN_LOGIN, demo_run["password"])
    with data.connect(settings) as conn:
        owners = conn.execute(
            "select distinct tableowner from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchall()
    assert owners == [(RUN_LOGIN,)]


def _files(roots: list[Path], since: float | None = None) -> Iterator[Path]:
    """Every file under `roots` (modified at or after `since`, if given), skipping .git and .venv."""
    for root in roots:
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = [name for name in subfolders if name not in (".git", ".venv")]
            for name in names:
                path = Path(folder, name)
                with contextlib.suppress(FileNotFoundError):  # the server recycles WAL files as we walk
                    if since is None or path.stat().st_mtime >= since:
                        yield path


# Each test greps for the password's random token: any form of the password, bare, in a
# conninfo string or URL-encoded, holds it as is.


def test_the_password_is_in_no_file_the_runs_wrote(demo_run):
    token = demo_run["token"].encode()
    # OFFERRANK_HOME (the runs' logs with dbt's output, reports, the server's data and log) and
    # DAGSTER_HOME (runs, event logs, compute logs), whole; of the project, what the runs wrote:
    # dbt's target/ and logs/ of each invocation, its partial-parse state.
    homes = list(_files([demo_run["settings"].home, Path(os.environ["DAGSTER_HOME"])]))
    written = list(_files([PROJECT_ROOT], since=demo_run["started"]))
    holding = []
    for path in homes + written:
        with contextlib.suppress(FileNotFoundError):
            if token in path.read_bytes():
                holding.append(path)
    assert holding == []
    # a log each for the first run, the re-run and the run that stopped (empty: it ran no dbt)
    logs = [path for path in homes if path.match("logs/run-*.log")]
    assert len(logs) == 3 and sum(path.stat().st_size > 0 for path in logs) == 2
    assert any(path.name == "dbt.log" for path in written) and any(path.suffix == ".db" for path in homes)


def test_the_password_is_in_no_dagster_run_event_or_metadata(demo_run):
    settings, token = demo_run["settings"], demo_run["token"]
    with data.connect(settings) as conn:
        run_ids = [
            run_id
            for (run_id,) in conn.execute(
                sql.SQL("select distinct run_id from {}").format(sql.Identifier(settings.ml_schema, "pipeline_runs"))
            ).fetchall()
        ]
    assert len(run_ids) == 2
    instance = DagsterInstance.get()
    for run_id in run_ids:
        # as Dagster's storage serialises them: the run (config, tags) and every event, with the
        # metadata of every materialization and asset check, and every log line
        assert token not in serialize_value(instance.get_run_by_id(run_id))
        events = instance.all_logs(run_id)
        assert [event for event in events if token in serialize_value(event)] == []
        materializations = [event.asset_materialization for event in events if event.asset_materialization]
        assert any(materialization.metadata for materialization in materializations)
        for materialization in materializations:
            assert token not in repr(materialization.metadata), materialization.asset_key


def test_the_password_is_in_no_row_of_any_table(demo_run):
    settings, token = demo_run["settings"], demo_run["token"]
    # every row of every table (the registry's provenance, stage messages, the marts) and every
    # comment dbt left on them
    with data.connect(settings) as conn:
        tables = conn.execute(
            "select schemaname, tablename from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert {(settings.ml_schema, table) for table in data.OUTPUT_TABLES} <= set(tables)
        holding = [
            table
            for table in tables
            if conn.execute(
                sql.SQL("select exists (select from {} as row where strpos(row::text, %s) > 0)").format(
                    sql.Identifier(*table)
                ),
                (token,),
            ).fetchone()[0]
        ]
        comments = conn.execute("select count(*) from pg_description where strpos(description, %s) > 0", (token,))
        assert holding == [] and comments.fetchone()[0] == 0


def test_the_password_is_not_in_what_the_runs_printed(demo_run):
    # from Python and from dbt's and the server's processes, stdout and stderr: the summary and
    # Dagster's log lines
    assert len(demo_run["output"]) == 3  # the first run, the re-run and the run that stopped
    for printed in demo_run["output"]:
        assert " - dagster - " in printed and demo_run["token"] not in printed
    assert all("stages:" in printed for printed in demo_run["output"][:2])


def test_a_refused_login_shows_no_password(demo_run, monkeypatch, capsys):
    settings = demo_run["settings"]
    token = secrets.token_hex(16)
    wrong = replace(settings, database=replace(settings.database, password=f"wrong {token}"))
    with pytest.raises(ConnectionError) as refused:
        data.connect(wrong)
    shown = "".join(traceback.format_exception(refused.value))  # with the cause psycopg raised
    assert "password authentication failed" in shown and RUN_LOGIN in shown
    assert token not in shown and token not in repr(wrong)
    # the command line reports the same refusal in its own words
    monkeypatch.setenv("PGPASSWORD", f"wrong {token}")
    assert cli.main(["model", "list"]) == 2
    printed = capsys.readouterr()
    assert "cannot reach the warehouse" in printed.err
    assert token not in printed.out + printed.err
