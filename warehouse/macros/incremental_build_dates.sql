{#-
    The dates an incremental, date-keyed model builds in this run, as a one-row select of
    first_date and last_date.

    `key_column` is the model's date key; `days_before_run_date` puts the last date before the
    run date (the labels and training examples build shown dates up to run date - 8, when their
    7-day window has closed). A full build (the first run, or `--full-refresh`) builds every
    date up to the last. An incremental run builds from the day after the newest date the table
    holds: a daily run builds one date, a run after a gap fills the gap, and a run for a date
    the table already holds (a replay) rebuilds that date alone. The model's delete+insert on
    `key_column` then replaces exactly the dates it built.
-#}
{% macro incremental_build_dates(key_column, days_before_run_date=0) -%}
    {%- set last_date = 'run_dates.as_of_date - ' ~ days_before_run_date -%}
    select
        {% if is_incremental() -%}
            least({{ last_date }}, (select max(built.{{ key_column }}) + 1 as next_date from {{ this }} as built))
        {%- else -%}
            '-infinity'::date
        {%- endif %} as first_date,
        {{ last_date }} as last_date
    from {{ ref('int_as_of_dates') }} as run_dates
    where run_dates.is_run_date
{%- endmacro %}
