"""A model's life in the registry: the heuristic before any model, the first promotion, the
challenger margin, a failed training, an unusable champion, and the `offerrank model` commands.

The tests run in file order on one database, like the days of a deployment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pandas as pd
import pytest
from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter
from psycopg import sql

from ml import checks, data, experiment, off_policy, pipeline
from ml.config import ExperimentConfig, ModelPolicy, Settings, load_model_policy, load_training_config
from ml.features import DbtManifest
from orchestration import cli
from tests.conftest import load_generated, use_database
from tests.ml.test_experiment import reference_variant

NEVER = ModelPolicy(retrain_weekdays=frozenset())


@pytest.fixture(scope="module")
def world(server: Settings, generated_world, dbt_manifest) -> dict:
    settings = use_database(server, "model_lifecycle")
    load_generated(settings, *generated_world)
    first_shown = pd.to_datetime(generated_world[0]["impressions"]["shown_at"]).min().date()
    return {"settings": settings, "too_early": first_shown + dt.timedelta(days=20)}


def _stage(settings: Settings) -> pipeline.StageRun:
    return pipeline.StageRun(settings, f"test-{uuid.uuid4()}", DbtManifest.load())


def _rows(settings: Settings, table: str, columns: list[str]) -> pd.DataFrame:
    with data.connect(settings) as conn:
        return data.read_relation(conn, sql.Identifier(settings.ml_schema, table), columns)


def _history(settings: Settings) -> pd.DataFrame:
    with data.connect(settings) as conn:
        return data.promotion_history(conn, settings.ml_schema)


def _champion_id(settings: Settings) -> str | None:
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
    return champion.model_id if champion else None


def _train_message(settings: Settings, run_id: str) -> tuple[str, str]:
    with data.connect(settings) as conn:
        return conn.execute(
            sql.SQL("select status, message from {} where run_id = %s and step = 'train'").format(
                sql.Identifier(settings.ml_schema, "pipeline_runs")
            ),
            (run_id,),
        ).fetchone()


def test_with_too_little_history_the_heuristic_ranks_and_says_so(world):
    settings = world["settings"]
    assert cli.main(["run", "--no-reporting", "--full-refresh", "--date", world["too_early"].isoformat()]) == 0
    assert _champion_id(settings) is None
    scores = _rows(settings, "offer_scores", ["model_id", "ranked_by", "score"])
    recommendations = _rows(settings, "recommendations", ["model_id", "ranked_by"])
    explanations = _rows(settings, "recommendation_explanations", ["model_id", "feature"])
    assert len(scores) > 0 and set(scores["ranked_by"]) == {"heuristic"} and set(scores["model_id"]) == {"heuristic"}
    assert scores["score"].between(0, 1).all()
    assert set(recommendations["ranked_by"]) == {"heuristic"}
    assert set(explanations["feature"]) <= {"historical_redemption_rate", "discount_depth"}
    with data.connect(settings) as conn:
        steps = dict(
            conn.execute(
                sql.SQL("select step, message from {} where run_date = %s").format(
                    sql.Identifier(settings.ml_schema, "pipeline_runs")
                ),
                (world["too_early"],),
            ).fetchall()
        )
    assert steps["train"].startswith("skipped:")
    assert "heuristic" in steps["score"]


def test_the_first_trained_model_is_promoted(world):
    settings = world["settings"]
    assert cli.main(["run", "--no-reporting", "--full-refresh"]) == 0
    champion_id = _champion_id(settings)
    history = _history(settings)[["model_id", "previous_model_id", "action", "reason"]]
    assert history[["model_id", "previous_model_id", "action"]].values.tolist() == [[champion_id, None, "promote"]]
    assert "no usable champion" in history["reason"].item()
    scores = _rows(settings, "offer_scores", ["score_date", "ranked_by"])
    assert set(scores.loc[scores["score_date"] > world["too_early"], "ranked_by"]) == {"model"}


def test_off_the_retraining_days_the_champion_scores_without_training(world):
    settings = world["settings"]
    stage = _stage(settings)
    outcome = pipeline.train_models(stage, load_training_config(), NEVER)
    assert outcome.status == "skipped" and "is current" in outcome.reason
    assert _train_message(settings, stage.run_id) == ("success", f"skipped: {outcome.reason}")


def test_a_challenger_needs_the_margin(world):
    settings = world["settings"]
    champion_id = _champion_id(settings)
    only_logreg = dataclasses.replace(load_training_config(), algorithms=("logreg",))
    if champion_id.startswith("logreg"):
        only_logreg = dataclasses.replace(only_logreg, algorithms=("lgbm_binary",))
    out_of_reach = dataclasses.replace(NEVER, promotion_margin=1.0)
    outcome = pipeline.train_models(_stage(settings), only_logreg, out_of_reach, forced=True)
    assert outcome.status == "trained" and not outcome.promoted
    assert "does not beat" in outcome.reason and _champion_id(settings) == champion_id
    # a negative margin lets any challenger through: the registry keeps one champion and the history
    anything_goes = dataclasses.replace(NEVER, promotion_margin=-1.0)
    outcome = pipeline.train_models(_stage(settings), only_logreg, anything_goes, forced=True)
    assert outcome.promoted and _champion_id(settings) == outcome.candidates[0].model_id != champion_id
    history = _history(settings)[["model_id", "previous_model_id", "action"]]
    assert history.values.tolist()[-1] == [outcome.candidates[0].model_id, champion_id, "promote"]


def test_model_commands_list_promote_and_roll_back(world, capsys):
    settings = world["settings"]
    history = _history(settings)[["model_id", "previous_model_id"]]
    current, previous = history.iloc[-1]
    assert cli.main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert current in listing and "promotions:" in listing
    assert cli.main(["model", "rollback", "--reason", "test"]) == 0
    assert _champion_id(settings) == previous
    assert cli.main(["model", "promote", current]) == 0
    assert _champion_id(settings) == current
    assert cli.main(["model", "promote", current]) == 0
    assert "was already" in capsys.readouterr().out
    assert cli.main(["model", "promote", "no-such-model"]) == 1
    actions = _history(settings)[["action", "reason"]]
    assert actions["action"].tolist()[-2:] == ["rollback", "manual_promote"]
    assert actions["reason"].tolist()[-2] == "test"


def test_a_failed_training_leaves_the_champion_scoring(world):
    settings = world["settings"]
    champion_id = _champion_id(settings)
    config = load_training_config()
    # LightGBM itself refuses the parameters: a real training failure
    broken = dataclasses.replace(
        config, algorithms=("lgbm_binary",), lgbm_binary_params={**config.lgbm_binary_params, "num_leaves": 1}
    )
    stage = _stage(settings)
    outcome = pipeline.train_models(stage, broken, NEVER, forced=True)
    assert outcome.status == "failed" and _champion_id(settings) == champion_id
    status, message = _train_message(settings, stage.run_id)
    assert status == "failed" and "num_leaves" in message
    pipeline.score_and_recommend(stage)
    scores = _rows(settings, "offer_scores", ["score_date", "model_id"])
    assert set(scores.loc[scores["score_date"] > world["too_early"], "model_id"]) == {champion_id}


def test_an_unusable_champion_falls_back_to_the_heuristic_and_forces_retraining(world):
    settings = world["settings"]
    with data.connect(settings) as conn:
        record = data.champion_model(conn, settings.ml_schema)
        stale = dataclasses.replace(
            record, model_id="stale", status="candidate", features=[*record.features, "dropped_feature"]
        )
        data.register_model(conn, settings.ml_schema, stale)
        data.promote_model(conn, settings.ml_schema, "stale", action="manual_promote", reason="test")
    stage = _stage(settings)
    counts = pipeline.score_and_recommend(stage)
    # as in a run: the day's explanations follow its new recommendations (the reporting marts of a
    # later run read both)
    pipeline.explain_recommendations(stage)
    scores = _rows(settings, "offer_scores", ["score_date", "ranked_by"])
    today = scores[scores["score_date"] > world["too_early"]]
    assert counts["candidate_pairs"] == len(today) and set(today["ranked_by"]) == {"heuristic"}
    outcome = pipeline.train_models(_stage(settings), load_training_config(), NEVER)
    assert outcome.status == "trained" and "cannot score today's candidates" in outcome.reason
    assert outcome.promoted and _champion_id(settings) != "stale"


def _last_run_steps(settings: Settings) -> dict[str, tuple[str, str, dt.date]]:
    """step -> (status, message, run_date) of the latest run of each step."""
    with data.connect(settings) as conn:
        rows = conn.execute(
            sql.SQL(
                "select distinct on (step) step, status, message, run_date from {} order by step, started_at desc"
            ).format(sql.Identifier(settings.ml_schema, "pipeline_runs"))
        ).fetchall()
    return {step: (status, message, run_date) for step, status, message, run_date in rows}


def _train_messages(settings: Settings, day: dt.date) -> list[str]:
    """The messages of every training stage of `day`, oldest first."""
    with data.connect(settings) as conn:
        rows = conn.execute(
            sql.SQL("select message from {} where step = 'train' and run_date = %s order by started_at").format(
                sql.Identifier(settings.ml_schema, "pipeline_runs")
            ),
            (day,),
        ).fetchall()
    return [message for (message,) in rows]


def test_feature_drift_of_another_day_above_the_threshold_triggers_retraining(world, monkeypatch, capsys):
    settings = world["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
    reference_date = champion.trained_for_date
    day = world["drift_day"] = reference_date - dt.timedelta(days=1)
    # The daily job for another day: the feature_drift asset measures its candidates against those
    # of the champion's training date, and the model_registry asset records the largest PSI. The
    # daily run does not train (no weekday retraining); the drift sensor's decision, which
    # `offerrank run` takes itself, launches the retraining run. No promotion, so the champion and
    # its reference stay.
    monkeypatch.setenv("OFFERRANK_RETRAIN_ON", "never")
    monkeypatch.setenv("OFFERRANK_DRIFT_THRESHOLD", "0")
    monkeypatch.setenv("OFFERRANK_PROMOTION_MARGIN", "1")
    monkeypatch.setenv("OFFERRANK_ALGORITHMS", "logreg")  # one candidate is enough to show why it trained
    assert cli.main(["run", "--no-reporting", "--date", day.isoformat()]) == 0
    printed = capsys.readouterr().out
    steps = _last_run_steps(settings)
    assert steps["train"][2] == day
    stage = _stage(settings)
    with data.connect(settings) as conn:
        signal = data.drift_signal(conn, settings.ml_schema, day)
    drift = _rows(settings, "feature_drift", [*pipeline.FEATURE_DRIFT_COLUMNS, "as_of_date"])
    drift = drift[drift["as_of_date"] == day].drop(columns="as_of_date")
    references = _rows(settings, "drift_reference", ["reference_date", "feature", "n_rows"])
    stored = references[references["reference_date"] == reference_date]
    assert sorted(drift["feature"]) == sorted(champion.features) == sorted(stored["feature"])
    assert set(drift["model_id"]) == {champion.model_id} and set(drift["reference_date"]) == {reference_date}
    assert set(drift["n_reference"]) == set(stored["n_rows"]) and (drift["n_current"] > 0).all()
    assert signal == drift.loc[drift["is_in_signal"], "psi"].max() > 0
    assert steps["drift"][0] == "success" and steps["drift"][1].startswith("largest drift")
    assert steps["train"][0] == "success"
    daily, retraining = _train_messages(settings, day)
    assert daily.startswith(f"skipped: champion {champion.model_id} is current")
    assert retraining.startswith(f"trained because feature drift {signal:.3f} exceeds the threshold 0.0")
    assert f"the drift sensor's retraining (drift {signal:.3f} > 0.0 in run" in printed
    assert _champion_id(settings) == champion.model_id
    # the run summary lists the largest drifts in the signal first
    summary = printed.split(f"feature drift of {day} against the candidates of {reference_date},")[1]
    top = drift[drift["is_in_signal"]].sort_values("psi", ascending=False).iloc[0]
    ks = "-" if pd.isna(top["ks"]) else f"{top['ks']:.4f}"
    assert summary.splitlines()[2].split() == [top["feature"], f"{top['psi']:.4f}", ks, "yes"]
    # the training kept the day's own reference, one row per feature
    assert sorted(references.loc[references["reference_date"] == day, "feature"]) == sorted(champion.features)

    # Measuring the same day again gives the same rows; under a threshold far above them the
    # champion stays untrained, under one below them it is retrained.
    measured = pipeline.measure_drift(stage, load_training_config())
    pd.testing.assert_frame_equal(
        measured.sort_values("feature", ignore_index=True),
        drift.sort_values("feature", ignore_index=True),
        check_dtype=False,
    )
    lenient = ModelPolicy(retrain_weekdays=frozenset(), drift_threshold=1e6)
    outcome = pipeline.train_models(stage, load_training_config(), lenient, drift=pipeline.drift_signal(stage))
    assert outcome.status == "skipped" and "is current" in outcome.reason
    only_logreg = dataclasses.replace(load_training_config(), algorithms=("logreg",))
    strict = ModelPolicy(retrain_weekdays=frozenset(), drift_threshold=0.0, promotion_margin=1.0)
    outcome = pipeline.train_models(_stage(settings), only_logreg, strict, drift=pipeline.drift_signal(stage))
    assert outcome.status == "trained" and f"feature drift {signal:.3f} exceeds the threshold" in outcome.reason


def test_a_champion_without_a_reference_sample_gives_no_drift_signal(world):
    settings = world["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        # as for a champion trained before drift references were kept
        conn.execute(
            sql.SQL("delete from {} where reference_date = %s").format(
                sql.Identifier(settings.ml_schema, "drift_reference")
            ),
            (champion.trained_for_date,),
        )
    stage = _stage(settings)
    assert pipeline.measure_drift(stage, load_training_config()).empty
    assert pipeline.drift_signal(stage) is None
    status, message, day = _last_run_steps(settings)["drift"]
    assert status == "success"
    assert message.startswith(f"no reference sample for {champion.trained_for_date}, the training date of champion")
    with data.connect(settings) as conn:
        assert data.largest_drifts(conn, settings.ml_schema, day).empty  # the earlier rows of the day are gone


def _latest_check(name: str) -> tuple[bool, str]:
    """The latest evaluation of the asset check `name` in the Dagster instance: passed, description."""
    records = DagsterInstance.get().get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION), limit=50
    )
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.asset_check_key.name == name:
            return evaluation.passed, evaluation.description
    raise LookupError(f"no evaluation of check {name}")


def test_the_metric_check_compares_the_champion_with_the_model_that_served_the_day_before(world, monkeypatch):
    settings = world["settings"]
    monkeypatch.setenv("OFFERRANK_RETRAIN_ON", "never")
    assert cli.main(["run", "--no-reporting"]) == 0  # the last date again, after the earlier drift day
    stage = _stage(settings)
    config = load_training_config()
    ran = _latest_check("champion_metric_holds")
    assert ran == (True, checks.champion_metric_holds(stage, config, load_model_policy()).description)
    assert _latest_check("scores_cover_candidates")[0] and _latest_check("every_eligible_customer_recommended")[0]
    outcome = checks.champion_metric_holds(stage, config, ModelPolicy(metric_tolerance=1.0))
    value, previous = outcome.metadata[config.primary_metric], outcome.metadata["previous_value"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema).model_id
        served_before = data.ranking_model(conn, settings.ml_schema, world["drift_day"])
        assert (
            value
            == data.validation_metrics(conn, settings.ml_schema, pipeline.run_date(conn, stage.manifest))[champion][
                config.primary_metric
            ]
        )
    assert outcome.passed and outcome.metadata["previous_model"] == served_before
    assert f"{config.primary_metric} {value:.4f} against {previous:.4f} of {served_before}" in outcome.description
    # a tolerance just short of the change fails the check
    strict = ModelPolicy(metric_tolerance=previous - value - 1e-6)
    assert not checks.champion_metric_holds(stage, config, strict).passed


def test_the_output_checks_fail_on_a_broken_day_and_pass_once_it_is_rewritten(world):
    settings = world["settings"]
    stage = _stage(settings)
    assert checks.scores_cover_candidates(stage).passed
    assert checks.every_eligible_customer_recommended(stage).passed
    with data.connect(settings) as conn:
        day = pipeline.run_date(conn, stage.manifest)
        customer = conn.execute(
            sql.SQL("select min(customer_id) from {} where score_date = %s").format(
                sql.Identifier(settings.ml_schema, "recommendations")
            ),
            (day,),
        ).fetchone()[0]
        for table in ("offer_scores", "recommendations"):
            conn.execute(
                sql.SQL("delete from {} where score_date = %s and customer_id = %s").format(
                    sql.Identifier(settings.ml_schema, table)
                ),
                (day, customer),
            )
    scores = checks.scores_cover_candidates(stage)
    assert not scores.passed and scores.metadata["score_rows"] < scores.metadata["candidate_pairs"]
    listed = checks.every_eligible_customer_recommended(stage)
    assert not listed.passed and listed.metadata["without_recommendations"] == 1
    assert listed.description.endswith(f"1 have none, e.g. customer_id {customer}")
    pipeline.score_and_recommend(stage)
    assert checks.scores_cover_candidates(stage).passed
    assert checks.every_eligible_customer_recommended(stage).passed


# --- experiments: variants, canary and shadow on the last run date (docs/experiments.md) -------------

SPLIT = ExperimentConfig(
    experiment_id="lifecycle-ab", salt="s1", treatment_share=0.5, canary_share=0.2, shadow="challenger"
)


def _day_rows(settings: Settings, table: str, day: dt.date) -> pd.DataFrame:
    with data.connect(settings) as conn:
        return data.date_rows(conn, settings.ml_schema, table, "score_date", day)


def _assignments(settings: Settings, experiment_id: str) -> pd.DataFrame:
    with data.connect(settings) as conn:
        return data.copy_out(
            conn,
            sql.SQL("select * from {} where experiment_id = %s order by customer_id").format(
                sql.Identifier(settings.ml_schema, "experiment_assignments")
            ),
            (experiment_id,),
        )


def test_an_experiment_serves_each_variant_by_its_ranker_with_a_shadow_beside(world, dbt_manifest, capsys):
    settings = dataclasses.replace(world["settings"], experiment=SPLIT)
    stage = _stage(settings)
    counts = pipeline.score_and_recommend(stage)
    with data.connect(settings) as conn:
        day = pipeline.run_date(conn, stage.manifest)
        champion = data.champion_model(conn, settings.ml_schema).model_id
        columns = ["model_id", "trained_for_date", "status", "metrics", "features"]
        registry = pd.DataFrame(
            conn.execute(
                sql.SQL("select {} from {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.Identifier(settings.ml_schema, "model_registry"),
                )
            ).fetchall(),
            columns=columns,
        )
    # the challenger, found independently: the latest training's best non-champion by ndcg@5 whose
    # features the marts still have (not the 'stale' model of an earlier test)
    registry["ndcg"] = registry["metrics"].map(lambda metrics: metrics.get("ndcg@5"))
    available = set(stage.manifest.feature_columns("fct_training_examples"))
    latest = registry[
        (registry["trained_for_date"] == registry["trained_for_date"].max())
        & (registry["status"] != "champion")
        & registry["features"].map(lambda names: set(names) <= available)
    ]
    challenger = latest.sort_values(["ndcg", "model_id"], ascending=[False, True])["model_id"].iloc[0]
    assert checks.scores_cover_candidates(stage).passed
    assert checks.every_eligible_customer_recommended(stage).passed

    recommendations = _day_rows(settings, "recommendations", day)
    scores = _day_rows(settings, "offer_scores", day)
    # the variants recomputed by the documented hash, one customer at a time
    expected = {c: reference_variant(c, SPLIT) for c in recommendations["customer_id"].unique()}
    assert (recommendations["variant"] == recommendations["customer_id"].map(expected)).all()
    assert (scores.groupby("customer_id")["variant"].nunique() == 1).all()
    by_variant = recommendations.groupby("variant")
    assert set(by_variant.groups) == {"control", "treatment", "canary"}
    assert set(by_variant.get_group("control")["ranked_by"]) == {"heuristic"}
    assert set(by_variant.get_group("treatment")["model_id"]) == {champion}
    assert set(by_variant.get_group("canary")["model_id"]) == {challenger} != {champion}
    assert counts["customers_by_variant"] == by_variant["customer_id"].nunique().to_dict()

    # first exposures: one row per customer served, at the day's midnight UTC, with their variant
    assigned = _assignments(settings, SPLIT.experiment_id)
    assert counts["new_assignments"] == len(assigned) == recommendations["customer_id"].nunique()
    assert (assigned["variant"] == assigned["customer_id"].map(expected)).all()
    assert set(assigned["assigned_at"]) == {pd.Timestamp(day, tz="UTC")}

    # the shadow: the challenger's own lists, and overlap@k recomputed here from the two tables
    shadow = _day_rows(settings, "shadow_recommendations", day)
    assert set(shadow["model_id"]) == {challenger}
    assert shadow.groupby("customer_id").size().equals(recommendations.groupby("customer_id").size())
    common = recommendations.merge(shadow, on=["customer_id", "offer_id"]).groupby("customer_id").size()
    lists = recommendations.groupby("customer_id").agg(length=("rank", "size"), variant=("variant", "first"))
    lists["overlap"] = common.reindex(lists.index, fill_value=0) / lists["length"]
    with data.connect(settings) as conn:
        agreement = data.shadow_agreement(conn, settings.ml_schema, day).set_index("variant")
    assert agreement.loc["all", "overlap_at_k"] == pytest.approx(lists["overlap"].mean())
    assert counts["overlap_at_k"] == pytest.approx(lists["overlap"].mean())
    # ... which the recommendations asset reports in its Dagster metadata
    from orchestration import assets  # here: dagster-dbt reads the manifest at import, `dbt_manifest` makes it

    metadata = assets.experiment_metadata(counts)
    assert metadata["shadow_overlap_at_k"] == pytest.approx(lists["overlap"].mean())
    assert (
        metadata["shadow_model"] == challenger
        and metadata["customers_control"] == by_variant.get_group("control")["customer_id"].nunique()
    )
    for variant, overlap in lists.groupby("variant")["overlap"].mean().items():
        assert agreement.loc[variant, "overlap_at_k"] == pytest.approx(overlap)
    assert agreement.loc["treatment", "overlap_at_k"] < 1  # the challenger does rank differently
    # ... and the run summary prints it
    cli._print_shadow(pipeline.run_summary(settings, stage.run_id))
    assert f"shadow {challenger} against the served lists of {day}: overlap@5 {lists['overlap'].mean():.4f}" in (
        capsys.readouterr().out
    )

    # a re-run of the day writes the same rows and no new exposure
    again = pipeline.score_and_recommend(_stage(settings))
    assert again["new_assignments"] == 0
    pd.testing.assert_frame_equal(_assignments(settings, SPLIT.experiment_id), assigned)
    pd.testing.assert_frame_equal(
        _day_rows(settings, "recommendations", day).sort_values(["customer_id", "rank"], ignore_index=True),
        recommendations.sort_values(["customer_id", "rank"], ignore_index=True),
    )


def test_a_changed_split_stops_the_day_and_a_new_experiment_reshuffles(world):
    settings = world["settings"]
    changed = dataclasses.replace(settings, experiment=dataclasses.replace(SPLIT, treatment_share=0.6))
    stage = _stage(changed)
    with data.connect(settings) as conn:
        day = pipeline.run_date(conn, stage.manifest)
    before = _day_rows(settings, "recommendations", day)
    with pytest.raises(
        experiment.AssignmentChangedError, match="start a new experiment with a new OFFERRANK_EXPERIMENT"
    ):
        pipeline.score_and_recommend(stage)
    pd.testing.assert_frame_equal(_day_rows(settings, "recommendations", day), before)  # the day stays whole

    # the same split under a new id and salt: customers drawn again, the old experiment's rows kept
    renamed = dataclasses.replace(changed.experiment, experiment_id="lifecycle-ab-2", salt="s2")
    pipeline.score_and_recommend(_stage(dataclasses.replace(settings, experiment=renamed)))
    old, new = _assignments(settings, SPLIT.experiment_id), _assignments(settings, "lifecycle-ab-2")
    assert old["customer_id"].tolist() == new["customer_id"].tolist()
    assert 0.3 < (old["variant"] != new["variant"]).mean() < 0.8

    # back to the defaults: everyone in treatment, no shadow rows left for the day
    pipeline.score_and_recommend(_stage(settings))
    assert set(_day_rows(settings, "recommendations", day)["variant"]) == {"treatment"}
    assert _day_rows(settings, "shadow_recommendations", day).empty


def test_evaluate_offline_estimates_the_champion_from_the_logged_visits(world, capsys):
    """`offerrank evaluate-offline` builds the off-policy window's candidates (its own Dagster job)
    and writes IPS, SNIPS and the logging policy's rate for the last run date's champion; a second
    estimate replaces them (the bootstrap is seeded: the same values)."""
    settings = world["settings"]
    assert cli.main(["evaluate-offline"]) == 0
    out = capsys.readouterr().out
    manifest = DbtManifest.load()
    with data.connect(settings) as conn:
        day = pipeline.run_date(conn, manifest)
        champion = data.champion_model(conn, settings.ml_schema).model_id
        rows = data.off_policy_estimates(conn, settings.ml_schema, day, champion, off_policy.ESTIMATORS)
        logged = data.copy_out(
            conn,
            sql.SQL(
                "select as_of_date, customer_id, sum(logged_impressions) as shown,"
                " sum(redeemed_impressions) as redeemed from {} group by 1, 2"
            ).format(manifest.relation("fct_logged_visit_candidates")),
        )
    # no served lists in this world's history with known labels: no online row
    assert rows["estimator"].tolist() == ["ips", "snips", "logging_policy"]
    assert f"{champion}'s lists (run date {day})" in out and "no online result" in out
    by_name = rows.set_index("estimator")
    assert by_name.loc["logging_policy", "value"] == pytest.approx(logged["redeemed"].sum() / logged["shown"].sum())
    assert (by_name["visits"] == len(logged)).all() and (by_name["logged_impressions"] == logged["shown"].sum()).all()
    assert 0 < by_name.loc["ips", "matched_impressions"] < logged["shown"].sum()
    assert len(logged) < by_name.loc["ips", "policy_impressions"] <= settings.top_k * len(logged)
    for name in ("ips", "snips"):
        assert by_name.loc[name, "ci_low"] <= by_name.loc[name, "value"] <= by_name.loc[name, "ci_high"]
    assert by_name.loc["ips", "window_end"] == logged["as_of_date"].max() < day

    evaluation = off_policy.evaluate_offline(_stage(settings))
    with data.connect(settings) as conn:
        again = data.off_policy_estimates(conn, settings.ml_schema, day, champion, off_policy.ESTIMATORS)
    assert evaluation.estimates["value"].tolist() == again["value"].tolist() == rows["value"].tolist()
    assert (again["estimated_at"] > rows["estimated_at"]).all()
