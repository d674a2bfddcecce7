{#-
    The dates an incremental, date-keyed model builds in this run: a dict of two SQL date
    expressions, `first_date` and `last_date` (inclusive), for the model to filter on.

    `key_column` is the model's date key; `days_before_run_date` puts the last date before the
    run date (the labels and training examples build shown dates up to run date - 8, when their
    7-day window has closed). A full build (the first run, or `--full-refresh`) builds every
    date up to the last. An incremental run builds from the day after the newest date the table
    holds: a daily run builds one date, a run after a gap fills the gap, and a run for a date
    the table already holds (a replay) rebuilds that date alone. The model's delete+insert on
    `key_column` then replaces exactly the dates it built.

    On an incremental run both dates are read when the model compiles (int_as_of_dates is built
    before it in the same run) and written into its SQL as literals: the planner estimates a
    literal bound from the column's statistics, where a bound read from a subquery is a guess
    (a few thousandths of the rows for a range), and at 100k customers the guess sent a 90-day
    window of 3.6M rows through plans sized for 24,000 (docs/performance.md). A full build's
    last date is a subquery of int_as_of_dates.
-#}
{% macro incremental_build_date_bounds(key_column, days_before_run_date=0) -%}
    {%- if is_incremental() -%}
        {%- set bounds_query -%}
            select
                least(run_dates.as_of_date - {{ days_before_run_date }}, (
                    select max(built.{{ adapter.quote(key_column) }}) + 1 from {{ this }} as built
                ))::text,
                (run_dates.as_of_date - {{ days_before_run_date }})::text
            from {{ ref('int_as_of_dates') }} as run_dates
            where run_dates.is_run_date
        {%- endset -%}
        {%- set bounds = run_query(bounds_query) -%}
        {%- if bounds.rows | length != 1 -%}
            {{ exceptions.raise_compiler_error(
                ref('int_as_of_dates') ~ " must hold exactly one run date, it holds " ~ (bounds.rows | length)) }}
        {%- endif -%}
        {{ return({
            'first_date': "'" ~ bounds.rows[0][0] ~ "'::date",
            'last_date': "'" ~ bounds.rows[0][1] ~ "'::date",
        }) }}
    {%- endif -%}
    {{ return({
        'first_date': "'-infinity'::date",
        'last_date': "(select run_dates.as_of_date - " ~ days_before_run_date ~ " from "
            ~ ref('int_as_of_dates') ~ " as run_dates where run_dates.is_run_date)",
    }) }}
{%- endmacro %}
