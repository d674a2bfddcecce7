"""Temporal split and LightGBM training, on DataFrames: no database, no globals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.config import TrainingConfig


@dataclass(frozen=True)
class TemporalSplit:
    """Examples split by impression date: everything in `valid` was shown after everything in `train`."""

    train: pd.DataFrame
    valid: pd.DataFrame
    train_start_date: dt.date
    train_end_date: dt.date
    valid_start_date: dt.date
    valid_end_date: dt.date


class NotEnoughDataError(ValueError):
    """The labelled examples cannot support a temporal split and a model."""


def temporal_split(examples: pd.DataFrame, date_column: str, valid_days: int) -> TemporalSplit:
    """Hold out the last `valid_days` impression dates for validation; train on the dates before."""
    dates = pd.to_datetime(examples[date_column]).dt.date
    if examples.empty:
        raise NotEnoughDataError("there are no labelled training examples")
    last = dates.max()
    valid_start = last - dt.timedelta(days=valid_days - 1)
    in_valid = (dates >= valid_start).to_numpy()
    train, valid = examples[~in_valid], examples[in_valid]
    for name, part in (("training", train), ("validation", valid)):
        if part.empty or part["label"].nunique() < 2:
            raise NotEnoughDataError(
                f"the {name} window has {len(part)} examples and needs both redeemed and unredeemed ones"
            )
    return TemporalSplit(
        train=train,
        valid=valid,
        train_start_date=dates[~in_valid].min(),
        train_end_date=dates[~in_valid].max(),
        valid_start_date=valid_start,
        valid_end_date=last,
    )


SAMPLE_WEIGHT = "sample_weight"


def downsample_negatives(examples: pd.DataFrame, negatives_per_positive: float, seed: int) -> pd.DataFrame:
    """Keep every positive and `negatives_per_positive` negatives per positive, weighted up to stand for all.

    The negatives kept are those with the smallest seeded hash of their impression_id: the same
    seed and data keep the same rows in any row order, and as days are added the kept set moves
    only at its margin (the hash cut-off shifts), not wholesale. Adds a `sample_weight` column
    (n_negatives / n_kept for kept negatives, 1 for positives).
    """
    negatives = np.flatnonzero(examples["label"].to_numpy() == 0)
    n_keep = min(len(negatives), int(np.ceil(negatives_per_positive * (len(examples) - len(negatives)))))
    weights = np.ones(len(examples))
    keep = np.ones(len(examples), dtype=bool)
    if n_keep < len(negatives):
        hashes = _seeded_hash(examples["impression_id"].to_numpy(dtype=np.uint64)[negatives], seed)
        keep[negatives[np.argsort(hashes, kind="stable")[n_keep:]]] = False
        weights[negatives] = len(negatives) / max(n_keep, 1)
    return examples.assign(**{SAMPLE_WEIGHT: weights})[keep]


def _seeded_hash(values: np.ndarray, seed: int) -> np.ndarray:
    # splitmix64's finaliser: a cheap, well-mixed 64-bit hash, the same on every platform
    with np.errstate(over="ignore"):
        z = values + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def train_binary(split: TemporalSplit, features: list[str], config: TrainingConfig) -> lgb.Booster:
    """A LightGBM binary classifier of redemption, early-stopped on the validation window.

    With `config.negatives_per_positive` set, the training window's negatives are downsampled
    first (`downsample_negatives`); the validation window is used whole.
    """
    params = {**config.lgbm_binary_params, "seed": config.seed}
    train = split.train
    if config.negatives_per_positive is not None:
        train = downsample_negatives(train, config.negatives_per_positive, config.seed)
    train_set = lgb.Dataset(
        _matrix(train, features), label=train["label"], weight=train.get(SAMPLE_WEIGHT), feature_name=features
    )
    valid_set = lgb.Dataset(_matrix(split.valid, features), label=split.valid["label"], reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=config.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )


def predict(booster: lgb.Booster, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Predicted probabilities of redemption for the rows of `frame`."""
    return booster.predict(_matrix(frame, features))


def _matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise KeyError(f"feature columns missing from the data: {missing}")
    return frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
