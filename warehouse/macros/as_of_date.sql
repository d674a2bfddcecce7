{#-
    The day features are built "as of": a SQL date expression.

    Features as of day D use only data timestamped strictly before D 00:00 UTC; scoring for D
    uses features as of D. With `--vars '{as_of_date: YYYY-MM-DD}'`, or OFFERRANK_AS_OF_DATE in
    the environment (macros/run_parameter.sql), that day is used; without either, the day after
    the latest impression, so a plain `dbt build` scores "tomorrow".

    Only `int_as_of_dates` calls this macro; every other model reads the date from it, which
    keeps their date logic unit-testable with plain mocked rows.
-#}
{% macro as_of_date() -%}
    {#- ref() is called on every path so the DAG does not change with --vars. -#}
    {%- set impressions = ref('stg_raw__impressions') -%}
    {%- set value = as_of_date_parameter() -%}
    {%- if value is not none -%}
        '{{ value }}'::date
    {%- else -%}
        (select max(shown_date) + 1 from {{ impressions }})
    {%- endif -%}
{%- endmacro %}

{#- The `as_of_date` run parameter (macros/run_parameter.sql), checked, as YYYY-MM-DD text; none
    where it is unset. -#}
{% macro as_of_date_parameter() -%}
    {%- set value = run_parameter('as_of_date') -%}
    {%- if value is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value) -%}
        {{ exceptions.raise_compiler_error(
            "as_of_date (var or OFFERRANK_AS_OF_DATE) must be a date as YYYY-MM-DD, got: " ~ value) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
