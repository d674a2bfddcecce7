"""Logistic regression on imputed, standardised numeric and one-hot categorical features, kept as JSON.

scikit-learn fits it; its fitted numbers (medians, means, scales, categories, coefficients) are
then the whole model. Scoring uses those numbers directly, so a model read back from the
registry needs no pickle and scores exactly as it did when trained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.config import TrainingConfig
from ml.feature_spec import FeatureSpec
from ml.train import TemporalSplit, training_window

MISSING_CATEGORY = "missing"  # what a null category is imputed as, in training and scoring alike
# The mean |contribution| importance is taken over at most this many training rows, evenly spaced:
# a mean over a million rows is settled long before the last of them.
IMPORTANCE_ROWS = 100_000


@dataclass(frozen=True)
class LogregModel:
    """A fitted logistic regression as the JSON-ready numbers that score it (see `ml.models.RankingModel`)."""

    features: FeatureSpec
    state: Mapping[str, object]
    algorithm: str = "logreg"

    @property
    def params(self) -> dict[str, object]:
        return dict(self.state["params"])

    def raw_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The log-odds, as scikit-learn's decision_function."""
        return self.contributions(frame).sum(axis=1)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Coefficient times transformed value per feature (a category's one-hot columns summed), intercept last."""
        inputs = self.features.frame(frame)
        names = list(self.features.names)
        out = np.empty((len(inputs), len(names) + 1))
        numeric = self.state["numeric"]
        if self.features.numeric:
            values = inputs[list(self.features.numeric)].to_numpy(dtype=np.float64)
            values = np.where(np.isnan(values), numeric["median"], values)
            standardised = (values - np.asarray(numeric["mean"])) / np.asarray(numeric["scale"])
            out[:, [names.index(name) for name in self.features.numeric]] = standardised * np.asarray(numeric["coef"])
        for name in self.features.categorical:
            levels = self.state["categories"][name]
            codes = pd.Index(levels["levels"]).get_indexer(inputs[name].fillna(MISSING_CATEGORY))
            out[:, names.index(name)] = np.where(codes >= 0, np.asarray(levels["coef"])[codes], 0.0)
        out[:, -1] = self.state["intercept"]
        return out

    def feature_importance(self) -> pd.DataFrame:
        return self.features.importance_table({"mean_abs_contribution": self.state["mean_abs_contribution"]})

    def to_text(self) -> str:
        return json.dumps(self.state, sort_keys=True)


def logreg_pipeline(features: FeatureSpec, logreg_params: Mapping[str, object]) -> Pipeline:
    """The scikit-learn pipeline logreg is fitted with; its numbers are then copied into a `LogregModel`."""
    transformers = []
    if features.numeric:
        # keep_empty_features: a column null in all of training keeps its coefficient slot (imputed 0)
        numeric = make_pipeline(SimpleImputer(strategy=median_or_zero, keep_empty_features=True), StandardScaler())
        transformers.append(("numeric", numeric, list(features.numeric)))
    if features.categorical:
        categorical = make_pipeline(
            SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        transformers.append(("categorical", categorical, list(features.categorical)))
    return Pipeline(
        [
            ("transform", ColumnTransformer(transformers)),
            ("model", LogisticRegression(**logreg_params)),
        ]
    )


def median_or_zero(observed: np.ndarray) -> float:
    """A column's median imputation value: the median of its observed values, 0 for a column null
    throughout training (as scikit-learn's "median" strategy with keep_empty_features). numpy's
    median partitions each column, where that strategy's masked median sorts it: 4 s of a 17 s fit
    at a million rows."""
    return float(np.median(observed)) if len(observed) else 0.0


def fit_logreg(split: TemporalSplit, features: FeatureSpec, config: TrainingConfig) -> LogregModel:
    """Logistic regression fitted on the training window; the tune window is not needed (no early stopping).

    Class weighting comes as row weights from `ml.train.training_window`, the same as LightGBM's,
    so the LogisticRegression itself has class_weight=None.
    """
    window = training_window(split, config, config.class_weighting)
    inputs = features.frame(window.rows)
    pipeline = logreg_pipeline(features, config.logreg_params)
    pipeline.fit(inputs, window.rows["label"].to_numpy(), model__sample_weight=window.weights)
    params = {**config.logreg_params, **window.params, "n_iter": int(pipeline.named_steps["model"].n_iter_[0])}
    model = LogregModel(features, _state(pipeline, features, params))
    # mean |contribution| over the training rows: how far each feature moves the log-odds
    sample = inputs.iloc[:: max(1, len(inputs) // IMPORTANCE_ROWS)]
    importance = np.abs(model.contributions(sample)[:, :-1]).mean(axis=0)
    return LogregModel(features, {**model.state, "mean_abs_contribution": importance.tolist()})


def load_logreg(text: str, features: FeatureSpec) -> LogregModel:
    """A model from `to_text`."""
    state = json.loads(text)
    if (state["features"], state["categorical"]) != (list(features.names), list(features.categorical)):
        raise ValueError(f"the model reads features {state['features']} (categorical {state['categorical']})")
    return LogregModel(features, state)


def _state(pipeline: Pipeline, features: FeatureSpec, params: dict[str, object]) -> dict[str, object]:
    """The fitted pipeline's numbers, as plain JSON-ready lists."""
    transform: ColumnTransformer = pipeline.named_steps["transform"]
    model: LogisticRegression = pipeline.named_steps["model"]
    coef = model.coef_[0]
    n_numeric = len(features.numeric)
    state: dict[str, object] = {
        "features": list(features.names),
        "categorical": list(features.categorical),
        "intercept": float(model.intercept_[0]),
        "numeric": {"median": [], "mean": [], "scale": [], "coef": []},
        "categories": {},
        "params": params,
    }
    if features.numeric:
        imputer, scaler = transform.named_transformers_["numeric"].steps
        state["numeric"] = {
            "median": imputer[1].statistics_.astype(np.float64).tolist(),
            "mean": scaler[1].mean_.tolist(),
            "scale": scaler[1].scale_.tolist(),
            "coef": coef[:n_numeric].tolist(),
        }
    if features.categorical:
        encoder: OneHotEncoder = transform.named_transformers_["categorical"].steps[-1][1]
        bounds = np.cumsum([0, *(len(levels) for levels in encoder.categories_)]) + n_numeric
        state["categories"] = {
            name: {"levels": levels.tolist(), "coef": coef[start:end].tolist()}
            for name, levels, start, end in zip(
                features.categorical, encoder.categories_, bounds[:-1], bounds[1:], strict=True
            )
        }
    return state
