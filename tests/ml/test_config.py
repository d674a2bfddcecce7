from pathlib import Path

from ml.config import DEFAULT_PORT, DEFAULT_READER_ROLE, PROJECT_ROOT, WAREHOUSE_DIR, load_settings


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
    assert database.describe().startswith("postgresql://analyst@db.example:6543/shop")


def test_home_and_schemas_are_configurable(tmp_path: Path):
    settings = load_settings(
        {"OFFERRANK_HOME": str(tmp_path), "OFFERRANK_ML_SCHEMA": "ranking", "OFFERRANK_TOP_K": "3"}
    )
    assert settings.pgdata == tmp_path / "pgdata"
    assert (settings.ml_schema, settings.top_k) == ("ranking", 3)


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
