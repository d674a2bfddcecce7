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


def train_binary(split: TemporalSplit, features: list[str], config: TrainingConfig) -> lgb.Booster:
    """A LightGBM binary classifier of redemption, early-stopped on the validation window."""
    params = {**config.lgbm_params, "seed": config.seed}
    train_set = lgb.Dataset(_matrix(split.train, features), label=split.train["label"], feature_name=features)
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
