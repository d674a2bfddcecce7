"""Experiment assignment and the agreement of a shadow ranking with the served one, on arrays.

A customer's variant is a pure function of the experiment's salt, its id and the customer id:
sha256 of `salt:experiment_id:customer_id`, its first 8 bytes as an unsigned big-endian integer,
modulo BUCKETS, gives the customer's bucket. Buckets [0, control) are `control`, the next
`canary_buckets` `canary`, the rest `treatment` (ExperimentConfig). The hash involves no state
and no order: the same customer gets the same variant on every day, in every chunk, on any
machine; a new experiment id (or salt) reshuffles everyone independently of the last one.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from ml.config import BUCKETS, VARIANTS, ExperimentConfig

ASSIGNMENT_COLUMNS = ["experiment_id", "customer_id", "variant", "assigned_at"]
AGREEMENT_COLUMNS = ["score_date", "variant", "model_id", "k", "customers", "overlap_at_k"]


def buckets(customer_ids: np.ndarray, experiment_id: str, salt: str) -> np.ndarray:
    """Each customer's bucket in 0..BUCKETS-1: the salted sha256 described above."""
    # The prefix is hashed once and its state copied per id; the digests' first 8 bytes are read
    # back as one array. About 1 µs a customer, on one core.
    prefix = hashlib.sha256(f"{salt}:{experiment_id}:".encode())

    def head(customer_id: int) -> bytes:
        digest = prefix.copy()
        digest.update(str(customer_id).encode())
        return digest.digest()[:8]

    digests = b"".join(map(head, np.asarray(customer_ids, dtype=np.int64).tolist()))
    return (np.frombuffer(digests, dtype=">u8") % np.uint64(BUCKETS)).astype(np.int64)


# Variants in bucket order: control's buckets first, then canary's, then treatment's.
_BUCKET_ORDER = np.array(["control", "canary", "treatment"], dtype=object)


def variants(customer_ids: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """Each customer's variant under `config`: control, canary or treatment, by bucket."""
    bucket = buckets(np.asarray(customer_ids), config.experiment_id, config.salt)
    edges = [config.control_buckets, config.control_buckets + config.canary_buckets]
    return _BUCKET_ORDER[np.searchsorted(edges, bucket, side="right")]


def customer_variants(customer_ids: pd.Series, config: ExperimentConfig) -> np.ndarray:
    """The variant of each row's customer (hashing each distinct customer once)."""
    distinct, inverse = np.unique(customer_ids.to_numpy(), return_inverse=True)
    return variants(distinct, config)[inverse]


def assignments(customer_ids: np.ndarray, variant: np.ndarray, config: ExperimentConfig, day: dt.date) -> pd.DataFrame:
    """`experiment_assignments` rows of customers first exposed on `day`: assigned at its midnight
    UTC, so a re-run of the day writes the same rows."""
    return pd.DataFrame(
        {
            "experiment_id": config.experiment_id,
            "customer_id": customer_ids,
            "variant": variant,
            "assigned_at": pd.Timestamp(day, tz="UTC"),
        },
        columns=ASSIGNMENT_COLUMNS,
    )


class AssignmentChangedError(RuntimeError):
    """Stored assignments of the experiment no longer follow from its configuration."""


def check_stored(stored: pd.DataFrame, config: ExperimentConfig) -> None:
    """Raise unless every stored (customer_id, variant) of the experiment is what `config` assigns.

    Changing a share (or the salt) under the same experiment id would move customers between
    variants mid-experiment and mix their outcomes: the experiment must start again under a new id.
    """
    if stored.empty:
        return
    now = variants(stored["customer_id"].to_numpy(), config)
    moved = stored[now != stored["variant"].to_numpy()]
    if not moved.empty:
        example = moved.iloc[0]
        raise AssignmentChangedError(
            f"experiment {config.experiment_id!r}: the configured split (treatment"
            f" {config.treatment_share:g}, canary {config.canary_share:g}, control"
            f" {config.control_buckets / BUCKETS:g}, this salt) no longer reproduces {len(moved):,} of its"
            f" {len(stored):,} stored assignments (e.g. customer {example['customer_id']} was"
            f" {example['variant']!r}). Shares and salt are fixed for an experiment's life: to change them, start"
            " a new experiment with a new OFFERRANK_EXPERIMENT id (or restore the old settings)."
        )


def overlap_at_k(served: pd.DataFrame, shadow: pd.DataFrame) -> pd.Series:
    """Per customer of `served`: |served list ∩ shadow list| / length of the served list.

    Both frames hold recommendation rows (customer_id, offer_id) of the same candidates under the
    same rules, so both lists of a customer are equally long: top_k, or fewer when fewer offers are
    eligible. A customer the shadow has no list for counts 0.
    """
    length = served.groupby("customer_id").size()
    common = served.merge(shadow[["customer_id", "offer_id"]], on=["customer_id", "offer_id"], how="inner")
    shared = common.groupby("customer_id").size().reindex(length.index, fill_value=0)
    return shared / length


def agreement_rows(day: dt.date, sums: dict[str, tuple[float, int]], model_id: str, k: int) -> pd.DataFrame:
    """`shadow_agreement` rows of a day from per-variant (sum of overlaps, customers), plus `all`."""
    total = (sum(s for s, _ in sums.values()), sum(n for _, n in sums.values()))
    rows = [
        {"score_date": day, "variant": variant, "model_id": model_id, "k": k, "customers": n,
         "overlap_at_k": s / n if n else None}
        for variant, (s, n) in [*((v, sums[v]) for v in VARIANTS if v in sums), ("all", total)]
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
