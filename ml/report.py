"""One run date's quality at a glance: a self-contained HTML page of plots and tables.

Pure rendering: `ReportData` holds what the page shows (gathered by `ml.pipeline.write_report`),
and `render_html` turns it into one HTML string whose images are inline PNGs, so the file can be
mailed, attached to a Dagster materialization or opened offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: render to PNG in memory

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

TOP_FEATURES = 15


@dataclass(frozen=True)
class ScoredWindow:
    """One scorer's predictions on the labelled validation window."""

    name: str
    labels: np.ndarray
    raw_scores: np.ndarray
    probabilities: np.ndarray | None  # None: the scorer gives no probabilities (the heuristic)


@dataclass(frozen=True)
class ReportData:
    as_of_date: dt.date
    model_id: str  # the model that ranked the date's offers, or 'heuristic'
    window: tuple[dt.date, dt.date]
    metrics: pd.DataFrame  # eval_metrics rows of the date, all customers: model_id, ordering, metric, k, value
    served: ScoredWindow
    oracle: ScoredWindow | None  # the true probabilities, on simulated data
    importance: pd.DataFrame  # feature, importance_type, importance of the served model; empty for the heuristic
    drift: pd.DataFrame  # feature, psi of the date; empty when not measured
    drift_threshold: float


@dataclass(frozen=True)
class Figure:
    title: str
    caption: str
    png: bytes


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _curves(scorers: list[ScoredWindow]) -> tuple[Figure, Figure]:
    roc, roc_axes = plt.subplots(figsize=(5, 4))
    pr, pr_axes = plt.subplots(figsize=(5, 4))
    for scorer in scorers:
        fpr, tpr, _ = roc_curve(scorer.labels, scorer.raw_scores)
        roc_axes.plot(fpr, tpr, label=scorer.name)
        precision, recall, _ = precision_recall_curve(scorer.labels, scorer.raw_scores)
        pr_axes.plot(recall, precision, label=scorer.name)
    roc_axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate")
    base_rate = float(np.mean(scorers[0].labels))
    pr_axes.axhline(base_rate, linestyle=":", color="grey", label=f"base rate {base_rate:.3f}")
    pr_axes.set(xlabel="recall", ylabel="precision")
    for axes in (roc_axes, pr_axes):
        axes.legend(loc="best", fontsize="small")
    return (
        Figure("ROC curve", "Redeemed against unredeemed impressions of the validation window.", _png(roc)),
        Figure("Precision-recall curve", "Precision of the impressions scored above each threshold.", _png(pr)),
    )


def cumulative_gains(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fraction of impressions targeted, fraction of redemptions captured), best scores first, from (0, 0)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    captured = np.cumsum(np.asarray(labels, dtype=float)[order])
    targeted = np.arange(1, len(order) + 1) / len(order)
    return np.r_[0.0, targeted], np.r_[0.0, captured / max(captured[-1], 1.0)]


def _gains(scorers: list[ScoredWindow]) -> Figure:
    figure, (gain_axes, lift_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for scorer in scorers:
        targeted, captured = cumulative_gains(scorer.labels, scorer.raw_scores)
        gain_axes.plot(targeted, captured, label=scorer.name)
        with np.errstate(divide="ignore", invalid="ignore"):
            lift_axes.plot(targeted[1:], captured[1:] / targeted[1:], label=scorer.name)
    gain_axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
    gain_axes.set(xlabel="share of impressions targeted (best first)", ylabel="share of redemptions captured")
    lift_axes.axhline(1.0, linestyle=":", color="grey")
    lift_axes.set(xlabel="share of impressions targeted (best first)", ylabel="lift over random")
    gain_axes.legend(loc="lower right", fontsize="small")
    return Figure("Gain and lift", "How many redemptions the top-scored impressions hold.", _png(figure))


def _calibration(scorers: list[ScoredWindow]) -> Figure:
    figure, axes = plt.subplots(figsize=(5, 4))
    for scorer in scorers:
        if scorer.probabilities is not None:
            observed, predicted = calibration_curve(scorer.labels, scorer.probabilities, n_bins=10, strategy="uniform")
            axes.plot(predicted, observed, marker="o", label=scorer.name)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    axes.set(xlabel="predicted probability (10 equal-width bins)", ylabel="observed redemption rate")
    axes.legend(loc="best", fontsize="small")
    return Figure("Calibration", "Predicted probability against the observed rate, per bin.", _png(figure))


def _ndcg_by_model(metrics: pd.DataFrame) -> Figure:
    ndcg = metrics[metrics["metric"] == "ndcg"].pivot_table(index="model_id", columns=["ordering", "k"], values="value")
    figure, axes = plt.subplots(figsize=(8, 0.5 + 0.6 * max(len(ndcg), 1)))
    positions = np.arange(len(ndcg))
    height = 0.8 / max(len(ndcg.columns), 1)
    for offset, (ordering, k) in enumerate(ndcg.columns):
        axes.barh(positions + offset * height, ndcg[ordering, k], height=height, label=f"NDCG@{int(k)} {ordering}")
    axes.set_yticks(positions + height * (len(ndcg.columns) - 1) / 2, ndcg.index)
    axes.set(xlabel="NDCG over customers (validation window)", xlim=(0, 1))
    # beside the plot: inside it, the legend would hide the bars that reach 1
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return Figure(
        "NDCG@k by model",
        "Every scorer of the date on the same rows, in its own order (raw) and as served after re-ranking;"
        " the oracle is the ceiling.",
        _png(figure),
    )


def _bars(frame: pd.DataFrame, value: str, title: str, caption: str) -> Figure:
    top = frame.sort_values(value, ascending=False).head(TOP_FEATURES).iloc[::-1]
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.3 * max(len(top), 1)))
    axes.barh(top["feature"], top[value])
    axes.set(xlabel=value)
    return Figure(title, caption, _png(figure))


def _drift_bars(drift: pd.DataFrame, threshold: float) -> Figure:
    """PSI per feature against the retraining threshold; the features outside the signal in grey."""
    top = drift.sort_values("psi", ascending=False).head(TOP_FEATURES).iloc[::-1]
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.3 * max(len(top), 1)))
    signal_colors = {True: "tab:blue", False: "lightgrey"}
    axes.barh(top["feature"], top["psi"], color=[signal_colors[bool(flag)] for flag in top["is_in_signal"]])
    threshold_line = axes.axvline(threshold, color="red", linestyle="--")
    axes.legend(
        [Patch(color=signal_colors[True]), Patch(color=signal_colors[False]), threshold_line],
        ["in the drift signal", "offer-level, not in the signal", f"retraining threshold {threshold}"],
        loc="lower right",
        fontsize="small",
    )
    axes.set(xlabel="population stability index")
    return Figure(
        "Feature drift",
        "Each feature's PSI between the candidates of the champion's training date and today's. The"
        " largest PSI in the signal is what the retraining policy compares with the threshold.",
        _png(figure),
    )


def figures(report: ReportData) -> list[Figure]:
    """Every plot of the report, in page order."""
    scorers = [report.served, *([report.oracle] if report.oracle is not None else [])]
    roc, pr = _curves(scorers)
    shown = [_ndcg_by_model(report.metrics), roc, pr, _gains(scorers), _calibration(scorers)]
    if not report.importance.empty:
        shown.append(
            _bars(
                report.importance,
                "importance",
                "Feature importance",
                f"{report.importance['importance_type'].iloc[0]} of {report.model_id}, by feature.",
            )
        )
    if not report.drift.empty:
        shown.append(_drift_bars(report.drift, report.drift_threshold))
    return shown


def _metrics_table(metrics: pd.DataFrame) -> str:
    metrics = metrics[metrics["ordering"] == "raw"]
    labels = metrics.assign(
        name=[m if pd.isna(k) else f"{m}@{int(k)}" for m, k in zip(metrics["metric"], metrics["k"], strict=True)]
    )
    table = labels.pivot_table(index="model_id", columns="name", values="value", aggfunc="first")
    return table.to_html(float_format=lambda v: f"{v:.4f}", na_rep="-", border=0, classes="metrics")


def render_html(report: ReportData) -> str:
    """The whole page: a header, the metrics table and every figure as an inline PNG."""
    body = "\n".join(
        f'<figure><h2>{html.escape(figure.title)}</h2><img alt="{html.escape(figure.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(figure.png).decode()}">'
        f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
        for figure in figures(report)
    )
    title = f"offerrank report for {report.as_of_date}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table.metrics {{ border-collapse: collapse; }}
table.metrics td, table.metrics th {{ padding: 4px 10px; text-align: right; }}
table.metrics tr:nth-child(even) {{ background: #f4f4f4; }} figure {{ margin: 2em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>{title}</h1>
<p>Offers ranked by <b>{html.escape(report.model_id)}</b>. Validation window: impressions shown
{report.window[0]} to {report.window[1]}, labelled by redemption within 7 days.</p>
<h2>Metrics on the validation window (all customers, each scorer's own order)</h2>
{_metrics_table(report.metrics)}
{body}
</body></html>
"""
