"""Benchmark: MMR re-ranking of synthetic candidates, no database.

    .venv/bin/python bench/rerank.py --customers 100000 --offers 50

Builds `--customers` x `--offers` candidates with random scores, categories, brand kinds,
discount depths and 10 % redeemed offers, then times `ml.rerank.mmr_rerank` with the default
re-ranking settings (best of `--repeat` runs) and prints the seconds and how many picks differ
from the score order.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from ml.config import RerankConfig
from ml.rerank import mmr_rerank


def candidates(customers: int, offers: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = customers * offers
    return pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(customers), offers),
            "offer_id": np.tile(np.arange(offers), customers),
            "score": rng.random(n),
            "offer_category": rng.choice([f"category_{i}" for i in range(12)], n),
            "is_own_brand": rng.integers(0, 2, n),
            "discount_depth": rng.choice([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4], n),
            "has_redeemed_offer": rng.random(n) < 0.1,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--offers", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frame = candidates(args.customers, args.offers)
    config = RerankConfig()
    options = {"top_k": args.top_k, "mmr_lambda": config.mmr_lambda, "max_per_category": config.max_per_category}
    seconds = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        reranked = mmr_rerank(frame, **options)
        seconds.append(time.perf_counter() - started)
    by_score = mmr_rerank(frame, **{**options, "mmr_lambda": 1.0, "max_per_category": args.top_k})
    moved = (reranked["offer_id"].to_numpy() != by_score["offer_id"].to_numpy()).mean()
    print(
        f"{args.customers:,} customers x {args.offers} offers: {min(seconds):.2f} s (best of {args.repeat}),"
        f" {len(reranked):,} recommendations, {moved:.1%} of positions differ from the score order"
    )


if __name__ == "__main__":
    main()
