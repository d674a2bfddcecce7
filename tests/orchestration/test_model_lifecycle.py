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
from psycopg import sql

from ml import data, pipeline
from ml.config import ModelPolicy, Settings, load_training_config
from ml.features import DbtManifest
from orchestration import cli
from tests.conftest import load_generated, use_database

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
    assert cli.main(["run", "--full-refresh", "--date", world["too_early"].isoformat()]) == 0
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
    assert cli.main(["run", "--full-refresh"]) == 0
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
    """step -> (status, message, run_date) of the latest run."""
    with data.connect(settings) as conn:
        rows = conn.execute(
            sql.SQL(
                "select step, status, message, run_date from {table} where run_id ="
                " (select run_id from {table} order by started_at desc limit 1)"
            ).format(table=sql.Identifier(settings.ml_schema, "pipeline_runs"))
        ).fetchall()
    return {step: (status, message, run_date) for step, status, message, run_date in rows}


def test_feature_drift_of_another_day_above_the_threshold_triggers_retraining(world, monkeypatch, capsys):
    settings = world["settings"]
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
    reference_date = champion.trained_for_date
    day = reference_date - dt.timedelta(days=1)
    # The daily job for another day: the feature_drift asset measures its candidates against those
    # of the champion's training date, and the model_registry asset hands the largest PSI to the
    # policy. No weekday retraining, and no promotion, so the champion and its reference stay.
    monkeypatch.setenv("OFFERRANK_RETRAIN_ON", "never")
    monkeypatch.setenv("OFFERRANK_DRIFT_THRESHOLD", "0")
    monkeypatch.setenv("OFFERRANK_PROMOTION_MARGIN", "1")
    assert cli.main(["run", "--date", day.isoformat()]) == 0
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
    assert steps["train"][1].startswith(f"trained because feature drift {signal:.3f} exceeds the threshold 0.0")
    assert _champion_id(settings) == champion.model_id
    # the run summary lists the largest drifts in the signal first
    summary = capsys.readouterr().out.split(f"feature drift of {day} against the candidates of {reference_date},")[1]
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
