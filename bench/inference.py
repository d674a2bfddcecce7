"""Benchmark: LightGBM inference by LightGBM itself against compiled trees (lleaves, tl2cgen).

    .venv/bin/python bench/inference.py --rows 200000 [--champion]

Two models: a synthetic one of 300 trees of 63 leaves on 30 float64 features (trained here, no
early stopping), and with `--champion` the configured warehouse's champion (a LightGBM model;
start the server and run the daily job first) on its run date's candidates, pandas categorical
features included, repeated to `--rows`. For each engine it prints the best of `--repeat` rows
per second from a frame of candidates to raw scores on `--threads` threads (each engine's own
conversion of the frame included) and the largest absolute difference of its raw scores from
LightGBM's; the compile time once per model. lleaves and tl2cgen (with treelite and a C compiler)
are optional: an engine that is not installed is listed as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from psycopg import sql

from ml.lgbm import LgbmModel, load_lgbm
from ml.models import FeatureSpec

Predict = Callable[[pd.DataFrame], np.ndarray]


def synthetic_model(
    rows: int, features: int = 30, trees: int = 300, leaves: int = 63
) -> tuple[LgbmModel, pd.DataFrame]:
    """A binary model of exactly `trees` trees of `leaves` leaves on float64 features, and its rows."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"f{i:02d}" for i in range(features)])
    frame.iloc[rng.random(rows) < 0.05, 3] = np.nan  # some missing values, as the marts have
    logit = np.sin(frame["f00"] * 2) + frame["f01"] * frame["f02"] + frame["f03"].fillna(0) ** 2 - 1
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "num_leaves": leaves, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 2}
    booster = lgb.train(params, lgb.Dataset(frame, label=label), num_boost_round=trees)
    spec = FeatureSpec(tuple(frame.columns))
    return load_lgbm("lgbm_binary", booster.model_to_string(), spec), frame


def champion_model(rows: int) -> tuple[LgbmModel, pd.DataFrame]:
    """The warehouse's champion and its run date's candidates, repeated to `rows` rows."""
    from ml import data
    from ml.config import load_settings
    from ml.features import CANDIDATES_MODEL, DbtManifest

    settings = load_settings()
    with data.connect(settings) as conn:
        record = data.champion_model(conn, settings.ml_schema)
        if record is None or not record.algorithm.startswith("lgbm"):
            raise SystemExit("--champion needs a LightGBM champion: run `offerrank run` first")
        features = FeatureSpec(tuple(record.features), tuple(record.categorical_features))
        relation = DbtManifest.load().relation(CANDIDATES_MODEL)
        (day,) = conn.execute(sql.SQL("select max(as_of_date) from {}").format(relation)).fetchone()
        frame = data.read_relation(
            conn, relation, list(record.features), where=sql.SQL("as_of_date = %s"), params=(day,)
        )
    frame = frame.iloc[np.resize(np.arange(len(frame)), rows)].reset_index(drop=True)
    return load_lgbm(record.algorithm, record.model_text, features), frame


def matrix(model: LgbmModel, frame: pd.DataFrame) -> np.ndarray:
    """The float64 matrix LightGBM reads from a frame: categories as their codes, missing as NaN."""
    inputs = model._inputs(frame)
    columns = [
        inputs[name].cat.codes.to_numpy(dtype=np.float64) if name in model.features.categorical else inputs[name]
        for name in model.features.names
    ]
    out = np.column_stack(columns).astype(np.float64)
    for i, name in enumerate(model.features.names):
        if name in model.features.categorical:
            out[out[:, i] < 0, i] = np.nan
    return out


def lleaves_engine(model: LgbmModel, threads: int, folder: Path) -> Predict:
    import lleaves

    path = folder / "model.txt"
    path.write_text(model.to_text())
    compiled = lleaves.Model(model_file=str(path))
    compiled.compile(raw_score=True)  # no cache: nothing is written to disk
    return lambda frame: compiled.predict(matrix(model, frame), n_jobs=threads)


def tl2cgen_engine(model: LgbmModel, threads: int, folder: Path) -> Predict:
    import tl2cgen
    import treelite

    library = folder / "model.so"
    tl2cgen.export_lib(
        treelite.frontend.from_lightgbm(model.booster), toolchain="gcc", libpath=str(library), nthread=threads
    )
    predictor = tl2cgen.Predictor(str(library), nthread=threads)
    return lambda frame: predictor.predict(tl2cgen.DMatrix(matrix(model, frame)), pred_margin=True).reshape(-1)


ENGINES = {"lleaves": (lleaves_engine, "lleaves"), "tl2cgen": (tl2cgen_engine, "tl2cgen")}


def best_rate(predict: Predict, frame: pd.DataFrame, repeat: int) -> tuple[float, np.ndarray]:
    best, scores = float("inf"), np.empty(0)
    for _ in range(repeat):
        started = time.perf_counter()
        scores = predict(frame)
        best = min(best, time.perf_counter() - started)
    return len(frame) / best, np.asarray(scores, dtype=np.float64)


def compare(name: str, model: LgbmModel, frame: pd.DataFrame, threads: int, repeat: int) -> None:
    trees = model.booster.num_trees()
    print(f"\n{name}: {trees} trees, {len(model.features.names)} features "
          f"({len(model.features.categorical)} categorical), {len(frame):,} rows, {threads} threads")  # fmt: skip

    def by_lightgbm(chunk: pd.DataFrame) -> np.ndarray:  # LgbmModel.raw_scores, on `threads` threads
        return model.booster.predict(model._inputs(chunk), raw_score=True, num_threads=threads)

    reference_rate, reference = best_rate(by_lightgbm, frame, repeat)
    print(f"  {'lightgbm':10s} {reference_rate:12,.0f} rows/s   (reference)")
    for engine, (build, module) in ENGINES.items():
        if importlib.util.find_spec(module) is None:
            print(f"  {engine:10s} not installed")
            continue
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            predict = build(model, threads, Path(folder))
            compiled = time.perf_counter() - started
            rate, scores = best_rate(predict, frame, repeat)
        difference = float(np.max(np.abs(scores - reference)))
        print(f"  {engine:10s} {rate:12,.0f} rows/s   {rate / reference_rate:5.2f}x   "
              f"max |diff| {difference:.3g}   compiled in {compiled:.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--champion", action="store_true", help="also the warehouse's champion on its candidates")
    args = parser.parse_args()
    model, frame = synthetic_model(args.rows)
    compare("synthetic", model, frame, args.threads, args.repeat)
    if args.champion:
        model, frame = champion_model(args.rows)
        compare("champion", model, frame, args.threads, args.repeat)


if __name__ == "__main__":
    main()
