"""BI's read-only role reads the marts and the ml tables and nothing else, and writes nothing.

The warehouse is built as the daily run builds it (dbt, then the ml stages, then the reporting
marts, without Dagster). The reader role (OFFERRANK_READER_ROLE) cannot log in; BI connects as a
login granted the role, and so does this test. Every statement runs in a transaction that is
rolled back, so nothing changes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ml import data, off_policy, pipeline
from ml.config import SHADOW_CHALLENGER, ExperimentConfig, ModelPolicy, OffPolicyConfig, Settings, TrainingConfig
from ml.features import DbtManifest
from tests.conftest import REPORTING_MARTS, dbt, load_generated, use_database

BI_LOGIN = "offerrank_bi_test"

WRITES = {
    "insert": "insert into {table} select * from {table} where false",
    "update": "update {table} set {column} = {column}",
    "delete": "delete from {table}",
    "truncate": "truncate {table} cascade",  # cascade: the registry's history references it
}


@dataclasses.dataclass(frozen=True)
class Warehouse:
    settings: Settings
    manifest: DbtManifest
    owner: psycopg.Connection  # the user offerrank runs as
    reader: psycopg.Connection  # BI_LOGIN, a member of the reader role

    def schema(self, layer: str) -> str:
        """The schema of a dbt folder (`marts`, `staging`, ...) or of a configured layer."""
        configured = {
            "raw": self.settings.raw_schema,
            "truth": self.settings.truth_schema,
            "ml": self.settings.ml_schema,
            "public": "public",
        }
        if layer in configured:
            return configured[layer]
        nodes = json.loads(self.manifest.path.read_text())["nodes"].values()
        (schema,) = {node["schema"] for node in nodes if node["resource_type"] == "model" and node["fqn"][1] == layer}
        return schema

    def relations(self, layer: str) -> list[tuple[str, str]]:
        """Every table and view in the layer's schema, as (schema, name); never empty."""
        schema = self.schema(layer)
        rows = self.owner.execute(
            "select table_schema, table_name from information_schema.tables where table_schema = %s order by 2",
            (schema,),
        ).fetchall()
        assert rows, f"schema {schema} holds nothing to check"
        return rows


def _is_denied(conn: psycopg.Connection, statement: sql.Composable) -> bool:
    """Run `statement` and roll it back; True if it failed for want of a privilege."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


@pytest.fixture(scope="module")
def warehouse(server: Settings, generated_world, dbt_manifest) -> Iterator[Warehouse]:
    settings = use_database(server, "reader_role")
    load_generated(settings, *generated_world)
    stage = pipeline.StageRun(settings, run_id="reader-role-test", manifest=DbtManifest.load())
    with pipeline.recorded_dbt_build(stage):
        dbt("run")
    outcome = pipeline.train_models(stage, TrainingConfig(), ModelPolicy())
    assert outcome.promoted, outcome.reason
    pipeline.measure_drift(stage, TrainingConfig())  # a daily run measures before training; it needs a champion
    pipeline.evaluate_champion(stage, TrainingConfig())
    # with a shadow, so that its tables have rows for the reader to read too
    shadowed = dataclasses.replace(settings, experiment=ExperimentConfig(shadow=SHADOW_CHALLENGER))
    pipeline.score_and_recommend(dataclasses.replace(stage, settings=shadowed))
    pipeline.explain_recommendations(stage)
    # the off-policy estimate, on demand: its marts and ml.off_policy_estimates
    dbt("run", "--selector", "off_policy")
    off_policy.evaluate_offline(
        dataclasses.replace(
            stage, settings=dataclasses.replace(settings, off_policy=OffPolicyConfig(bootstrap_samples=50))
        )
    )
    dbt("run", "--selector", "reporting")  # the reporting marts, over the ml tables
    with data.connect(settings) as owner:
        owner.execute(
            sql.SQL("create role {} login in role {}").format(
                sql.Identifier(BI_LOGIN), sql.Identifier(settings.reader_role)
            )
        )
        login = dataclasses.replace(settings.database, user=BI_LOGIN, password="")
        try:
            with psycopg.connect(login.conninfo(), autocommit=True) as reader:
                yield Warehouse(settings, stage.manifest, owner, reader)
        finally:
            owner.execute(sql.SQL("drop role {}").format(sql.Identifier(BI_LOGIN)))


def test_the_reader_role_cannot_log_in_and_has_no_special_attributes(warehouse):
    attributes = warehouse.owner.execute(
        "select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
        " from pg_roles where rolname = %s",
        (warehouse.settings.reader_role,),
    ).fetchone()
    assert attributes == (False,) * 6


@pytest.mark.parametrize("layer", ["marts", "ml"])
def test_the_reader_reads_every_row_of_every_table_bi_reads(warehouse, layer):
    relations = warehouse.relations(layer)
    if layer == "ml":
        assert set(data.OUTPUT_TABLES) <= {name for _, name in relations}
    else:
        assert set(REPORTING_MARTS) <= {name for _, name in relations}
    for relation in relations:
        count = sql.SQL("select count(*) from {}").format(sql.Identifier(*relation))
        rows = warehouse.owner.execute(count).fetchone()[0]
        # the closed loop's served impressions: none in a generated history, readable all the same
        assert rows > 0 or relation[1] == "fct_served_impressions", relation
        assert warehouse.reader.execute(count).fetchone()[0] == rows, relation


def test_an_ml_table_created_later_is_readable_too(warehouse):
    table = sql.Identifier(warehouse.settings.ml_schema, "added_later")
    warehouse.owner.execute(sql.SQL("create table {} (x integer)").format(table))
    try:
        assert warehouse.reader.execute(sql.SQL("select count(*) from {}").format(table)).fetchone() == (0,)
    finally:
        warehouse.owner.execute(sql.SQL("drop table {}").format(table))


@pytest.mark.parametrize("layer", ["raw", "truth", "staging", "intermediate"])
def test_the_reader_cannot_read_raw_truth_staging_or_intermediate(warehouse, layer):
    readable = [
        relation
        for relation in warehouse.relations(layer)
        if not _is_denied(warehouse.reader, sql.SQL("select 1 from {} limit 1").format(sql.Identifier(*relation)))
    ]
    assert readable == []


@pytest.mark.parametrize("layer", ["marts", "ml"])
@pytest.mark.parametrize("write", list(WRITES))
def test_the_reader_cannot_write_a_table(warehouse, layer, write):
    written = []
    for relation in warehouse.relations(layer):
        (column,) = warehouse.owner.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s and ordinal_position = 1",
            relation,
        ).fetchone()
        statement = sql.SQL(WRITES[write]).format(table=sql.Identifier(*relation), column=sql.Identifier(column))
        # The statement itself is sound: only a missing privilege may stop it.
        assert not _is_denied(warehouse.owner, statement)
        if not _is_denied(warehouse.reader, statement):
            written.append(relation)
    assert written == []


@pytest.mark.parametrize("layer", ["marts", "ml", "public", "raw"])
def test_the_reader_cannot_create_a_table(warehouse, layer):
    table = sql.Identifier(warehouse.schema(layer), "created_by_the_reader")
    assert _is_denied(warehouse.reader, sql.SQL("create table {} (x integer)").format(table))


def test_the_reader_cannot_create_a_schema(warehouse):
    assert _is_denied(warehouse.reader, sql.SQL("create schema created_by_the_reader"))


def test_ml_tables_reach_a_reader_role_of_any_name(warehouse):
    schema, role = 'ml "quoted"', 'BI "Reader" 2'
    try:
        for _ in range(2):  # idempotent: the second call finds the role and the tables
            data.ensure_ml_tables(warehouse.owner, schema, role)
        for table in data.OUTPUT_TABLES:
            relation = sql.Identifier(schema, table).as_string(warehouse.owner)
            assert warehouse.owner.execute(
                "select has_table_privilege(%s, %s, 'select'), has_table_privilege(%s, %s, 'insert')",
                (role, relation, role, relation),
            ).fetchone() == (True, False)
    finally:
        warehouse.owner.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        warehouse.owner.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        warehouse.owner.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
