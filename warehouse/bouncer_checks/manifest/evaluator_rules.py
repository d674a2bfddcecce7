"""dbt-bouncer checks for the dbt-project-evaluator rules that dbt-bouncer lacks or checks differently.

dbt-bouncer loads this file through `custom_checks_dir` in warehouse/dbt-bouncer.yml; each
function becomes a check named after it. Resources are the manifest's JSON objects, read by
attribute (`model.columns`, `source.loaded_at_field`); `ctx` holds the whole manifest.
"""

import re
from pathlib import PurePosixPath
from typing import Any

from dbt_bouncer.check_framework.decorator import check, fail

# Column constraints that make a column not null, as a not_null test would.
NOT_NULL_CONSTRAINTS = frozenset({"not_null", "primary_key"})


def _test_names(test: Any) -> set[str]:
    """A generic test's name, with and without its package: `unique`, `dbt_utils.unique_...`."""
    metadata = test.test_metadata
    if not metadata:
        return set()
    return {metadata.name, f"{metadata.namespace}.{metadata.name}"} if metadata.namespace else {metadata.name}


def _tested_columns(tests: list[Any], test_name: str) -> set[str]:
    """The columns that have the generic test `test_name`."""
    return {test.column_name for test in tests if test.column_name and test_name in _test_names(test)}


def _exposure_parents(ctx: Any) -> set[str]:
    """unique_id of every model and source some exposure reads."""
    return {node for exposure in ctx.exposures for node in exposure.depends_on.nodes or []}


@check
def check_model_grain_tested(model, ctx, *, combination_tests: list[str]):
    """Every model has its grain (primary key) tested: evaluator rule `fct_missing_primary_key_tests`.

    The grain is tested when one column has both a `unique` test and a `not_null` test (or a
    not_null or primary_key constraint), or when the model has one of `combination_tests` (the
    project's `unique_combination_of_columns`) over its key columns.
    """
    tests = ctx.tests_by_attached_node.get(model.unique_id, [])
    if any(_test_names(test) & set(combination_tests) for test in tests):
        return
    not_null = _tested_columns(tests, "not_null") | {
        name
        for name, column in (model.columns or {}).items()
        if any(constraint.type in NOT_NULL_CONSTRAINTS for constraint in column.constraints or [])
    }
    if not _tested_columns(tests, "unique") & not_null:
        fail(
            f"`{model.name}` has no tested grain: give its key column both `unique` and `not_null`, "
            f"or the model one of {combination_tests} over its key columns."
        )


@check
def check_model_foreign_keys_tested(model, ctx, *, column_name_pattern: str = r"_id$"):
    """Key columns that are not the model's own key have a `relationships` test (STYLE.md).

    A column matching `column_name_pattern` with a `unique` test is the model's own key; every
    other one refers to another model and must say which, with `relationships`.
    """
    tests = ctx.tests_by_attached_node.get(model.unique_id, [])
    tested = _tested_columns(tests, "unique") | _tested_columns(tests, "relationships")
    untested = [name for name in model.columns or {} if re.search(column_name_pattern, name) and name not in tested]
    if untested:
        fail(f"`{model.name}` has key columns with no `relationships` test: {untested}.")


@check
def check_model_properties_file_named_for_folder(model):
    """A model's YAML is `_<folder>__models.yml` in the folder of its SQL (STYLE.md).

    Evaluator rule `fct_test_directories` asks for tests beside their model; this is the
    project's own naming for that one file per folder (dbt-bouncer's
    check_model_property_file_location wants `_<layer>_<folder>__models.yml`).
    """
    sql_path = PurePosixPath(model.original_file_path)
    expected = sql_path.parent / f"_{sql_path.parent.name}__models.yml"
    actual = (model.patch_path or "").partition("://")[2]
    if actual != str(expected):
        fail(f"`{model.name}` is documented in `{actual or 'no file'}`, not in `{expected}`.")


@check
def check_model_leaf_fanout(model, ctx, *, models_fanout_threshold: int = 3):
    """A model feeds fewer than `models_fanout_threshold` leaf models: evaluator rule `fct_model_fanout`.

    A leaf model is one that no model and no exposure reads. Many leaves on one parent usually
    mean reporting logic repeated where one shared mart would do.
    """
    read_by_exposures = _exposure_parents(ctx)
    leaves = sorted(
        child.name
        for child in ctx.children_by_unique_id.get(model.unique_id, [])
        if not ctx.children_by_unique_id.get(child.unique_id) and child.unique_id not in read_by_exposures
    )
    if len(leaves) >= models_fanout_threshold:
        fail(f"`{model.name}` feeds {len(leaves)} leaf models {leaves}; at most {models_fanout_threshold - 1}.")


@check
def check_source_freshness_computable(source, *, exceptions: dict[str, str]):
    """Every source table has a freshness that `dbt source freshness` can compute on PostgreSQL.

    Evaluator rule `fct_sources_without_freshness`, made stricter: warn_after or error_after,
    and a `loaded_at_field` or `loaded_at_query`, since PostgreSQL has no metadata-based
    freshness. `exceptions` maps `<source>.<table>` to the reason it has none; an exception for a
    table that does have a freshness is stale and fails too.
    """
    name = f"{source.source_name}.{source.name}"
    freshness = source.freshness or {}
    thresholds = [
        after for after in (freshness.get("warn_after"), freshness.get("error_after")) if after and after.get("count")
    ]
    has_query = bool(source.loaded_at_field or source.loaded_at_query)
    if name in exceptions:
        if not exceptions[name].strip():
            fail(f"`{name}` is listed without a reason in the exceptions of check_source_freshness_computable.")
        if thresholds or has_query:
            fail(f"`{name}` has a freshness now: remove it from the exceptions of check_source_freshness_computable.")
        return
    if not thresholds:
        fail(f"`{name}` has no freshness: set warn_after and/or error_after.")
    if not has_query:
        fail(f"`{name}` has a freshness but no loaded_at_field or loaded_at_query: PostgreSQL cannot compute it.")


@check
def check_source_used(source, ctx):
    """Every source table is read by a model or an exposure: evaluator rule `fct_unused_sources`.

    dbt-bouncer's check_source_not_orphaned counts models only; here a table BI reads directly
    (an exposure's source) is in use too.
    """
    if not ctx.children_by_unique_id.get(source.unique_id) and source.unique_id not in _exposure_parents(ctx):
        fail(f"`{source.source_name}.{source.name}` is read by no model and no exposure: remove it or use it.")


@check
def check_exposure_source_parents(exposure, *, permitted_sources: list[str]):
    """Exposures read no source but the permitted ones: evaluator rule `fct_exposure_parents_materializations`.

    The evaluator lets exposures read tables that dbt builds and tests, never raw sources. The
    sources in `permitted_sources` are outputs, not inputs: tables the project's own Python
    writes with a fixed DDL, which BI reads as they are. Models are checked by dbt-bouncer's
    check_exposure_based_on_view and check_exposure_based_on_non_public_models.
    """
    sources = [node for node in exposure.depends_on.nodes or [] if node.startswith("source.")]
    # source.<package>.<source name>.<table>
    others = sorted(node.split(".", 2)[2] for node in sources if node.split(".")[2] not in permitted_sources)
    if others:
        fail(f"`{exposure.name}` reads sources {others}: read a mart built from them instead.")
