"""LightGBM's two models: a binary classifier of redemption and a lambdarank ranker of a customer's offers.

Text categories go to LightGBM as pandas categoricals with the training window's vocabulary,
which LightGBM writes into its model text (`pandas_categorical`); scoring maps values through
that vocabulary, so a category unseen in training, or a null, is a missing value, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.config import TrainingConfig
from ml.feature_spec import FeatureSpec
from ml.train import TemporalSplit, TrainingWindow, training_window

# Lambdarank ranks the offers a customer was shown on one day against each other.
RANKING_GROUP = ["customer_id", "shown_date"]
RELEVANCE = "relevance"


@dataclass(frozen=True)
class LgbmModel:
    """A trained or loaded LightGBM booster with the features it reads (see `ml.models.RankingModel`)."""

    algorithm: str
    features: FeatureSpec
    booster: lgb.Booster
    fit_params: Mapping[str, object]

    @property
    def params(self) -> dict[str, object]:
        return dict(self.fit_params)

    def raw_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self._inputs(frame), raw_score=True)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """TreeSHAP contributions, one column per feature and the expected value last."""
        return self.booster.predict(self._inputs(frame), pred_contrib=True)

    def feature_importance(self) -> pd.DataFrame:
        return self.features.importance_table(
            {kind: self.booster.feature_importance(importance_type=kind) for kind in ("gain", "split")}
        )

    def to_text(self) -> str:
        """LightGBM's own model text, up to the best iteration, with the category vocabulary."""
        return self.booster.model_to_string()

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        columns = _categorical_columns(self.features)
        vocabularies = dict(zip(columns, self.booster.pandas_categorical or [], strict=True))
        return _categorised(self.features.frame(frame), vocabularies)


def _categorical_columns(features: FeatureSpec) -> list[str]:
    # in the order of the frame LightGBM sees, which is the order of its vocabularies in the model text
    return [name for name in features.names if name in features.categorical]


def _categorised(frame: pd.DataFrame, vocabularies: Mapping[str, Sequence[object]]) -> pd.DataFrame:
    """`frame` with each categorical column as a pandas categorical over its vocabulary (anything else: NaN)."""
    return frame.assign(
        **{
            name: pd.Categorical.from_codes(pd.Index(vocabulary).get_indexer(frame[name]), categories=list(vocabulary))
            for name, vocabulary in vocabularies.items()
        }
    )


def load_lgbm(algorithm: str, text: str, features: FeatureSpec) -> LgbmModel:
    """A model from `to_text`. Its params are what LightGBM's text records, with `best_iteration`."""
    booster = lgb.Booster(model_str=text)
    if booster.feature_name() != list(features.names):
        raise ValueError(f"the model reads features {booster.feature_name()}, not {list(features.names)}")
    return LgbmModel(algorithm, features, booster, {**booster.params, "best_iteration": booster.current_iteration()})


def fit_lgbm_binary(split: TemporalSplit, features: FeatureSpec, config: TrainingConfig) -> LgbmModel:
    """A binary classifier of redemption, early-stopped on the tune window's AUC.

    Class weighting is applied as row weights (`ml.train.training_window`), the same as logreg's,
    rather than LightGBM's scale_pos_weight.
    """
    window = training_window(split, config, config.class_weighting)
    return _fit(
        "lgbm_binary",
        features,
        config,
        config.lgbm_binary_params,
        window,
        train_label=window.rows["label"].to_numpy(),
        tune=split.tune,
        tune_label=split.tune["label"].to_numpy(),
    )


def fit_lgbm_lambdarank(split: TemporalSplit, features: FeatureSpec, config: TrainingConfig) -> LgbmModel:
    """A lambdarank ranker of each customer's offers of a day, early-stopped on the tune window's NDCG@5.

    The gain is the graded `relevance` (3 redeem, 2 click, 1 view, 0 none) where the examples carry
    it, else the binary `label`. Class weighting does not apply: the objective compares offers
    within a group, not classes; downsampling weights, if any, do.
    """
    window = training_window(split, config, "none")
    train_order, train_groups = ranking_groups(window.rows)
    window = TrainingWindow(window.rows.iloc[train_order], window.weights[train_order], window.params)
    tune_order, tune_groups = ranking_groups(split.tune)
    tune = split.tune.iloc[tune_order]
    return _fit(
        "lgbm_lambdarank",
        features,
        config,
        config.lgbm_lambdarank_params,
        window,
        train_label=_relevance(window.rows),
        tune=tune,
        tune_label=_relevance(tune),
        groups=(train_groups, tune_groups),
    )


def ranking_groups(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The row order that puts each (customer, shown date) group together, and the groups' sizes in it.

    LightGBM reads groups as runs of consecutive rows. Within a group rows follow impression_id,
    so the model does not depend on the order the rows arrived in.
    """
    keys = [*RANKING_GROUP, "impression_id"] if "impression_id" in frame.columns else RANKING_GROUP
    ordered = frame[keys].reset_index(drop=True).sort_values(keys, kind="mergesort")
    order = ordered.index.to_numpy()
    sizes = ordered.groupby(RANKING_GROUP, sort=False, dropna=False).size().to_numpy()
    return order, sizes


def _relevance(frame: pd.DataFrame) -> np.ndarray:
    return frame[RELEVANCE if RELEVANCE in frame.columns else "label"].to_numpy(dtype=np.int32)


def _fit(
    algorithm: str,
    features: FeatureSpec,
    config: TrainingConfig,
    lgbm_params: Mapping[str, object],
    window: TrainingWindow,
    *,
    train_label: np.ndarray,
    tune: pd.DataFrame,
    tune_label: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray] | tuple[None, None] = (None, None),
) -> LgbmModel:
    train_inputs = features.frame(window.rows)
    vocabularies = {name: sorted(train_inputs[name].dropna().unique()) for name in _categorical_columns(features)}
    train_set = lgb.Dataset(
        _categorised(train_inputs, vocabularies), label=train_label, weight=window.weights, group=groups[0]
    )
    tune_set = lgb.Dataset(
        _categorised(features.frame(tune), vocabularies), label=tune_label, group=groups[1], reference=train_set
    )
    params = {**lgbm_params, "seed": config.seed}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.num_boost_round,
        valid_sets=[tune_set],
        valid_names=["tune"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    return LgbmModel(
        algorithm,
        features,
        booster,
        {
            **params,
            **window.params,
            "num_boost_round": config.num_boost_round,
            "early_stopping_rounds": config.early_stopping_rounds,
            "best_iteration": booster.best_iteration,
        },
    )
