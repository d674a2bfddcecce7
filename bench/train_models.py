"""Benchmark: the three candidate models on the simulator's data, next to the heuristic and the oracle.

    .venv/bin/python bench/train_models.py --customers 45000

Generates a world into the configured warehouse (the embedded server by default: start it with
`offerrank db start`; this replaces its raw tables), builds the dbt marts, reads the labelled
impressions and splits them as training does (train / tune / valid). Then, for each algorithm of
the training config, prints the wall seconds of fitting (on 2 threads), the size of the saved
model text, and its validation metrics after calibration, next to the heuristic and the oracle
(the ranking by true probability) on the same rows, with each scorer's gap to the oracle.
Last it times the whole train stage as the daily run has it (`pipeline.train_models`, forced:
reading, the three fits, calibration, evaluation, registration, the drift reference),
`--stage-runs` times; the runs after the first have a champion to judge as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.world_options import add_world_options, world_params
from ml import data, pipeline
from ml.config import PROFILES_DIR, WAREHOUSE_DIR, load_model_policy, load_settings, load_training_config
from ml.features import TRAINING_MODEL, DbtManifest
from ml.generate import generate_all
from ml.models import FeatureSpec, fit_model
from ml.train import temporal_split

COLUMNS = ("ndcg@5", "ndcg@10", "roc_auc", "log_loss", "brier", "ece")


def _build_marts(as_of_date: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--full-refresh", "--quiet", "--profiles-dir",
         str(PROFILES_DIR), "--vars", json.dumps({"as_of_date": as_of_date})],
        cwd=WAREHOUSE_DIR,
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_options(parser, customers=45_000, offers=200)
    parser.add_argument("--stage-runs", type=int, default=1, help="how many times to time the train stage")
    args = parser.parse_args()
    params = world_params(args)
    settings = load_settings()
    config = load_training_config()
    frames, truth = generate_all(params)
    with data.connect(settings) as conn, conn.transaction():
        data.replace_raw_tables(conn, settings.raw_schema, frames)
        data.replace_truth_tables(conn, settings.truth_schema, truth)
    as_of = (params.end_date + dt.timedelta(days=1)).isoformat()
    print(f"{params}: dbt marts built in {_build_marts(as_of):.1f} s")

    manifest = DbtManifest.load()
    features = FeatureSpec(
        tuple(manifest.feature_columns(TRAINING_MODEL)), tuple(manifest.categorical_feature_columns(TRAINING_MODEL))
    )
    with data.connect(settings) as conn:
        examples = pipeline.read_examples(conn, manifest, list(features.names))
        split = temporal_split(examples, "shown_date", config.valid_days, config.tune_days)
        references = pipeline.reference_predictions(conn, settings, split.valid)
    print(
        f"{len(examples):,} labelled impressions, {len(features.names)} features: train {len(split.train):,}"
        f" ({split.train_start_date}..{split.train_end_date}), tune {len(split.tune):,}, valid {len(split.valid):,}"
        f" ({split.valid['customer_id'].nunique():,} customers)"
    )
    predictions: dict[str, pipeline.Predictions] = {}
    print(f"\n{'model':<18}{'fit s':>8}{'size MB':>9}")
    for algorithm in config.algorithms:
        started = time.perf_counter()
        model = fit_model(algorithm, split, features, config)
        seconds = time.perf_counter() - started
        size_mb = len(model.to_text().encode()) / 1e6
        calibrator = pipeline.fit_calibration(model, split, config)
        predictions[algorithm] = pipeline.model_predictions(model, calibrator, split.valid)
        print(f"{algorithm:<18}{seconds:8.1f}{size_mb:9.3f}")
    started = time.perf_counter()
    evaluation = pipeline.evaluate_window(split.valid, {**predictions, **references}, config, settings.rerank)
    print(
        f"evaluation of {len(evaluation)} scorers, every segment, raw and served: {time.perf_counter() - started:.1f} s"
    )
    results = {name: pipeline.headline_metrics(rows) for name, rows in evaluation.items()}

    oracle = results.get(pipeline.ORACLE_MODEL_ID, {})
    print(f"\nvalidation window, {config.calibration} calibration; gap = oracle - scorer")
    print(f"{'scorer':<18}" + "".join(f"{column:>10}" for column in COLUMNS) + f"{'gap@5':>10}")
    for name, metrics in results.items():
        cells = "".join(f"{metrics.get(column, float('nan')):10.4f}" for column in COLUMNS)
        gap = oracle.get("ndcg@5", float("nan")) - metrics.get("ndcg@5", float("nan"))
        print(f"{name:<18}{cells}{gap:10.4f}")

    stage = pipeline.StageRun(settings=settings, run_id="bench-train-models", manifest=manifest)
    for run in range(1, args.stage_runs + 1):
        started = time.perf_counter()
        outcome = pipeline.train_models(stage, config, load_model_policy(), forced=True)
        if outcome.status != "trained":
            raise SystemExit(f"the train stage did not train: {outcome.reason}")
        print(
            f"\ntrain stage, run {run}: {time.perf_counter() - started:.1f} s on {len(examples):,} labelled impressions"
        )


if __name__ == "__main__":
    main()
