{#-
    A parameter of one run: the run date (`as_of_date`) or the days a daily build's tests read
    (`test_recent_days`). The `--vars` value of `name` if given, else the environment variable
    OFFERRANK_<NAME> (OFFERRANK_AS_OF_DATE, OFFERRANK_TEST_RECENT_DAYS), as trimmed text; none
    where neither is set.

    The environment variable is read only while dbt executes, never while it parses. dbt parses
    the whole project again whenever `--vars` change (4 s on this project), and a run date
    passed as a var changes every day; the Dagster asset passes both in the environment instead
    (orchestration/dbt_builds.py), so a daily build reuses the parse of the day before. Hence
    what a run parameter changes must be SQL, never a model's config, which dbt fixes when it
    parses: the quarantine's rechecked rows are a macro its incremental strategy calls
    (macros/incremental_recheck.sql), not `incremental_predicates`.
-#}
{% macro run_parameter(name) -%}
    {%- set value = var(name, none) -%}
    {%- if (value is none or value | string | trim == '') and execute -%}
        {%- set value = env_var('OFFERRANK_' ~ name | upper, '') -%}
    {%- endif -%}
    {%- if value is none or value | string | trim == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(value | string | trim) }}
{%- endmacro %}
