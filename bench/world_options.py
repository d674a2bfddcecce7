"""The simulated world's size as command-line options, shared by the benchmarks."""

from __future__ import annotations

import argparse

from ml.generate import GeneratorParams


def add_world_options(parser: argparse.ArgumentParser, *, customers: int, offers: int, products: int = 1_000) -> None:
    """--customers, --products, --offers, --days and --seed, with this benchmark's defaults."""
    defaults = GeneratorParams()
    parser.add_argument("--customers", type=int, default=customers)
    parser.add_argument("--products", type=int, default=products)
    parser.add_argument("--offers", type=int, default=offers)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)


def world_params(args: argparse.Namespace) -> GeneratorParams:
    return GeneratorParams(
        customers=args.customers, products=args.products, offers=args.offers, days=args.days, seed=args.seed
    )
