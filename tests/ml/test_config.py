import re
from pathlib import Path

import pytest

from ml.config import (
    ALGORITHMS,
    DEFAULT_PORT,
    DEFAULT_READER_ROLE,
    PROJECT_ROOT,
    WAREHOUSE_DIR,
    RerankConfig,
    TrainingConfig,
    load_settings,
    load_training_config,
)


def test_defaults_point_at_the_embedded_server():
    settings = load_settings({})
    assert settings.database.embedded
    assert (settings.database.host, settings.database.port) == ("127.0.0.1", DEFAULT_PORT)
    assert settings.home == PROJECT_ROOT / ".offerrank"


def test_pghost_selects_an_external_server_and_the_password_is_never_shown():
    settings = load_settings(
        {"PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "analyst", "PGPASSWORD": "s3cret", "PGDATABASE": "shop"}
    )
    database = settings.database
    assert not database.embedded
    assert "s3cret" in database.conninfo()
    assert "s3cret" not in database.describe()
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings) and "s3cret" not in repr(database)
    assert database.describe().startswith("postgresql://analyst@db.example:6543/shop")


def test_home_and_schemas_are_configurable(tmp_path: Path):
    settings = load_settings(
        {"OFFERRANK_HOME": str(tmp_path), "OFFERRANK_ML_SCHEMA": "ranking", "OFFERRANK_TOP_K": "3"}
    )
    assert settings.pgdata == tmp_path / "pgdata"
    assert (settings.ml_schema, settings.top_k) == ("ranking", 3)


def test_schema_and_role_names_are_taken_verbatim_up_to_postgres_identifier_length():
    hostile = 'ml"; drop table raw.customers; --'
    assert load_settings({"OFFERRANK_ML_SCHEMA": hostile}).ml_schema == hostile
    assert load_settings({"OFFERRANK_READER_ROLE": "é" * 31}).reader_role == "é" * 31  # 62 bytes
    for variable in ("OFFERRANK_RAW_SCHEMA", "OFFERRANK_ML_SCHEMA", "OFFERRANK_TRUTH_SCHEMA", "OFFERRANK_READER_ROLE"):
        for name in ("", "x" * 64, "é" * 32, "a\x00b"):
            with pytest.raises(ValueError, match=variable):
                load_settings({variable: name})


def test_rerank_defaults_environment_overrides_and_validation():
    assert load_settings({}).rerank == RerankConfig(mmr_lambda=0.8, max_per_category=2)
    settings = load_settings({"OFFERRANK_MMR_LAMBDA": "1", "OFFERRANK_MAX_PER_CATEGORY": "5"})
    assert settings.rerank == RerankConfig(mmr_lambda=1.0, max_per_category=5)
    for variable, value in (
        ("OFFERRANK_MMR_LAMBDA", "1.2"),
        ("OFFERRANK_MMR_LAMBDA", "-0.1"),
        ("OFFERRANK_MMR_LAMBDA", "high"),
        ("OFFERRANK_MAX_PER_CATEGORY", "0"),
        ("OFFERRANK_MAX_PER_CATEGORY", "1.5"),
    ):
        with pytest.raises(ValueError, match=variable):
            load_settings({variable: value})


def test_the_reader_role_is_configurable_and_dbt_has_the_same_default():
    assert load_settings({}).reader_role == DEFAULT_READER_ROLE == "offerrank_reader"
    assert load_settings({"OFFERRANK_READER_ROLE": "bi_read"}).reader_role == "bi_read"
    default = f"env_var('OFFERRANK_READER_ROLE', '{DEFAULT_READER_ROLE}')"
    for path in (WAREHOUSE_DIR / "dbt_project.yml", WAREHOUSE_DIR / "macros" / "reader_role.sql"):
        assert default in path.read_text(), path


def test_profiles_yml_has_the_same_defaults():
    profile = (PROJECT_ROOT / "profiles" / "profiles.yml").read_text()
    for default in ("env_var('PGHOST', '127.0.0.1')", f"env_var('PGPORT', '{DEFAULT_PORT}')",
                    "env_var('PGUSER', 'postgres')", "env_var('PGDATABASE', 'offerrank')"):  # fmt: skip
        assert default in profile


def test_training_defaults_and_environment_overrides():
    assert load_training_config({}) == TrainingConfig()
    assert TrainingConfig().algorithms == ALGORITHMS
    config = load_training_config(
        {
            "OFFERRANK_ALGORITHMS": " logreg, lgbm_lambdarank ",
            "OFFERRANK_CALIBRATION": "isotonic",
            "OFFERRANK_CLASS_WEIGHTING": "none",
            "OFFERRANK_PRIMARY_METRIC": "roc_auc",
            "OFFERRANK_NEGATIVES_PER_POSITIVE": "4",
        }
    )
    assert config.algorithms == ("logreg", "lgbm_lambdarank")
    assert (config.calibration, config.class_weighting, config.primary_metric) == ("isotonic", "none", "roc_auc")
    assert config.negatives_per_positive == 4.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OFFERRANK_ALGORITHMS", "logreg,xgboost", "OFFERRANK_ALGORITHMS"),
        ("OFFERRANK_ALGORITHMS", "logreg,logreg", "distinct"),
        ("OFFERRANK_ALGORITHMS", "logreg,", "OFFERRANK_ALGORITHMS"),
        ("OFFERRANK_CALIBRATION", "beta", "(OFFERRANK_CALIBRATION) must be one of platt, isotonic"),
        ("OFFERRANK_CLASS_WEIGHTING", "auto", "(OFFERRANK_CLASS_WEIGHTING) must be one of none, balanced"),
        ("OFFERRANK_PRIMARY_METRIC", "log_loss", "(OFFERRANK_PRIMARY_METRIC) must be one of roc_auc, ndcg@3"),
        ("OFFERRANK_PRIMARY_METRIC", "ndcg@7", "ndcg@3, ndcg@5, ndcg@10"),
        ("OFFERRANK_NEGATIVES_PER_POSITIVE", "0", "positive number"),
        ("OFFERRANK_NEGATIVES_PER_POSITIVE", "many", "positive number"),
    ],
)
def test_invalid_training_overrides_fail_with_the_variable_named(variable, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_training_config({variable: value})


def test_off_policy_settings_come_from_the_environment():
    from ml.config import OffPolicyConfig, load_off_policy_config

    assert load_settings({}).off_policy == OffPolicyConfig()
    config = load_off_policy_config({"OFFERRANK_OFF_POLICY_WINDOW_DAYS": "7", "OFFERRANK_OFF_POLICY_BOOTSTRAP": "200"})
    assert (config.window_days, config.bootstrap_samples) == (7, 200)
    with pytest.raises(ValueError, match="OFFERRANK_OFF_POLICY_WINDOW_DAYS must be an integer"):
        load_off_policy_config({"OFFERRANK_OFF_POLICY_WINDOW_DAYS": "two weeks"})
    with pytest.raises(ValueError, match="at least 1"):
        load_off_policy_config({"OFFERRANK_OFF_POLICY_BOOTSTRAP": "0"})


def test_scoring_shards_default_and_their_variable_is_checked():
    from ml.config import MAX_SCORING_SHARDS, Shard

    assert load_settings({}).scoring_shards == 4
    assert load_settings({"OFFERRANK_SCORING_SHARDS": " 16 "}).scoring_shards == 16
    for text in ("0", "-2", "three", "1.5", str(MAX_SCORING_SHARDS + 1)):
        with pytest.raises(ValueError, match=f"OFFERRANK_SCORING_SHARDS must be a whole number .* got '{text}'"):
            load_settings({"OFFERRANK_SCORING_SHARDS": text})
    assert str(Shard(2, 3)) == "shard 2 of 3"
    for index, count in ((3, 3), (-1, 3), (0, 0)):
        with pytest.raises(ValueError, match="shard"):
            Shard(index, count)
