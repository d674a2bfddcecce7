"""Metrics of ranked lists, one list per customer group, on arrays: no database, no globals.

Rows carry their group as a dense code 0..G-1 (`group_codes`) and their 0-based `position` in
the group's list (0 = first, no two rows of a group at one position; `positions` makes them from
sort keys). Relevant means label 1: redeemed within 7 days. Per-group metrics come back as arrays
of length G, NaN where undefined, so a caller can average them over any set of groups, such as a
customer segment, without grouping the rows again. Everything is bincount and sorting: no loop
over groups.

- NDCG@k (`ndcg_by_group`): gain 2^relevance - 1, discount 1 / log2(position + 1) with positions
  from 1; rows tied on score share the average gain of their block (scikit-learn's `ndcg_score`);
  each group normalised by its ideal DCG at the same cutoff;
- precision@k: relevant rows among the first k, divided by k (not by the list's length: a list
  shorter than k counts its missing places as misses, so short lists cannot look precise);
- recall@k: relevant rows among the first k, divided by the group's relevant rows;
- average precision: the mean, over the group's relevant rows, of the precision at each one's
  position (scikit-learn's `average_precision_score` on untied scores); MAP is its mean over groups.
  These four are undefined for a group with no relevant row: it is left out;
- margin@k: the sum of the rows' values among the first k (defined for every group);
- diversity@k: the mean, over pairs of rows among the first k, of 1 - similarity, with the
  re-ranker's similarity (the share of `rerank.similarity_codes` two rows have in common);
  defined for groups with at least two rows among the first k;
- coverage@k: the share of distinct items that are among the first k of at least one list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_codes(groups: np.ndarray) -> np.ndarray:
    """Dense integer codes 0..G-1 of the groups, in order of first appearance."""
    return pd.factorize(np.asarray(groups))[0]


def positions(groups: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Each row's 0-based position in its group, rows sorted by `keys` ascending (the first key
    first, the next breaking its ties); rows tied on every key keep their order."""
    groups = np.asarray(groups)
    order = np.lexsort((*reversed([np.asarray(key) for key in keys]), groups))  # stable: ties keep row order
    result = np.empty(len(order), dtype=np.int64)
    result[order] = _places(groups[order])
    return result


def _places(sorted_groups: np.ndarray) -> np.ndarray:
    """0-based place of each row in its group, rows already sorted by group."""
    first = np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]
    return np.arange(len(sorted_groups)) - np.maximum.accumulate(np.where(first, np.arange(len(sorted_groups)), 0))


def _per_group(codes: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """Per group, the sum of `values` over its rows (its row count without values)."""
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    return np.bincount(codes, weights=values, minlength=n_groups).astype(float)


def _among_first(codes: np.ndarray, values: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Per group, the sum of `values` over its rows at positions before k."""
    return _per_group(codes, np.where(positions < k, np.asarray(values, dtype=float), 0.0))


def _where_relevant(codes: np.ndarray, labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` per group, NaN for the groups with no relevant row."""
    return np.where(_per_group(codes, labels) > 0, values, np.nan)


def precision_at_k(codes: np.ndarray, labels: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Per group: relevant rows among its first k, divided by k."""
    return _where_relevant(codes, labels, _among_first(codes, labels, positions, k) / k)


def recall_at_k(codes: np.ndarray, labels: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Per group: the share of its relevant rows that are among its first k."""
    relevant = _per_group(codes, labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _where_relevant(codes, labels, _among_first(codes, labels, positions, k) / relevant)


def average_precision(codes: np.ndarray, labels: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per group: the mean over its relevant rows of the precision at their position."""
    order = np.lexsort((positions, codes))
    sorted_codes, sorted_labels = codes[order], np.asarray(labels, dtype=float)[order]
    cumulative = np.cumsum(sorted_labels)
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    before_group = np.maximum.accumulate(np.where(first, cumulative - sorted_labels, 0.0))
    precision = (cumulative - before_group) / (positions[order] + 1)
    relevant = _per_group(codes, labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_group(sorted_codes, np.where(sorted_labels > 0, precision, 0.0)) / np.where(
            relevant > 0, relevant, np.nan
        )


def _discounts(positions: np.ndarray, k: int | None) -> np.ndarray:
    discounts = 1.0 / np.log2(positions + 2.0)
    return discounts if k is None else np.where(positions < k, discounts, 0.0)


def _dcg(codes: np.ndarray, gains: np.ndarray, scores: np.ndarray, ks: tuple[int | None, ...]) -> list[np.ndarray]:
    """DCG@k per group in score order for each k, rows tied on score sharing their block's mean gain."""
    order = np.lexsort((-scores, codes))
    sorted_codes, sorted_scores = codes[order], scores[order]
    new_block = np.r_[True, (sorted_codes[1:] != sorted_codes[:-1]) | (sorted_scores[1:] != sorted_scores[:-1])]
    block = np.cumsum(new_block) - 1
    mean_gain = np.bincount(block, weights=gains[order]) / np.bincount(block)
    places, block_code = _places(sorted_codes), sorted_codes[new_block]
    return [_per_group(block_code, mean_gain * np.bincount(block, weights=_discounts(places, k))) for k in ks]


def ndcg_by_group(
    codes: np.ndarray, relevance: np.ndarray, scores: np.ndarray, ks: tuple[int | None, ...]
) -> list[np.ndarray]:
    """Per group: NDCG@k of the score order, for each k of `ks` (None: the whole list)."""
    gains = np.exp2(np.asarray(relevance, dtype=float)) - 1.0
    # The ideal order: gains descending; ties among equal gains change nothing.
    ideals = _dcg(codes, gains, gains, ks)
    dcgs = _dcg(codes, gains, np.asarray(scores, dtype=float), ks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [np.where(ideal > 0, dcg / ideal, np.nan) for dcg, ideal in zip(dcgs, ideals, strict=True)]


def margin_at_k(codes: np.ndarray, values: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Per group: the sum of `values` over its first k rows."""
    return _among_first(codes, values, positions, k)


def diversity_at_k(codes: np.ndarray, attributes: list[np.ndarray], positions: np.ndarray, k: int) -> np.ndarray:
    """Per group with at least two rows among its first k: their mean pairwise 1 - similarity,
    the similarity of two rows being the share of the `attributes` (integer codes) they share."""
    top = positions < k
    size = _per_group(codes, top)
    pairs = size * (size - 1) / 2
    matching = np.zeros_like(pairs)
    for attribute in attributes:  # a handful of attributes, not groups
        values = np.asarray(attribute)[top]
        span = int(values.max() - values.min()) + 1 if len(values) else 1
        # A value held by c rows of one list makes c(c-1)/2 matching pairs.
        keys, counts = np.unique(codes[top] * span + (values - values.min()), return_counts=True)
        matching += np.bincount(keys // span, weights=counts * (counts - 1) / 2, minlength=len(pairs))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, 1.0 - matching / (len(attributes) * pairs), np.nan)


def coverage_at_k(items: np.ndarray, positions: np.ndarray, k: int) -> float:
    """The share of distinct `items` that are among the first k rows of at least one list."""
    item_codes = group_codes(items)
    if not len(item_codes):
        return float("nan")
    first_position = np.full(int(item_codes.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first_position, item_codes, positions)
    return float((first_position < k).mean())
