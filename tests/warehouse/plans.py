"""The planner's plans of queries on a built warehouse, for the tests that pin how a model is read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql


def plan_of(conn: psycopg.Connection, query: sql.Composable) -> dict:
    """The plan PostgreSQL would run `query` with (EXPLAIN, not run), as a tree of JSON nodes."""
    (explained,) = conn.execute(sql.SQL("explain (format json) {}").format(query)).fetchone()
    return explained[0]["Plan"]


def plan_nodes(plan: dict) -> Iterator[dict]:
    """Every node of `plan`, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


JOIN_NODE_TYPES = {"Hash Join", "Merge Join", "Nested Loop"}


def joins_above(plan: dict, relation: str, joins: tuple[dict, ...] = ()) -> tuple[dict, ...] | None:
    """The joins above the first scan of `relation` in `plan`, the nearest last; None if no node scans it."""
    if plan.get("Relation Name") == relation:
        return joins
    above = (*joins, plan) if plan["Node Type"] in JOIN_NODE_TYPES else joins
    for child in plan.get("Plans", []):
        found = joins_above(child, relation, above)
        if found is not None:
            return found
    return None


def model_plan(conn: psycopg.Connection, manifest: Path, model: str, compiled: str) -> dict:
    """The plan of `model`'s `compiled` select under the model's own pre-hooks (its `set local`
    settings), in a transaction rolled back."""
    node = json.loads(manifest.read_text())["nodes"][f"model.offerrank.{model}"]
    with conn.transaction(force_rollback=True):
        for hook in node["config"]["pre-hook"]:
            conn.execute(hook["sql"])
        return plan_of(conn, sql.SQL(compiled))
