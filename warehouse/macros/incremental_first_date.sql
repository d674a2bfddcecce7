{#-
    The first date an incremental, date-keyed model builds in this run: a SQL date expression.

    `last_date` is the last date the model builds (a SQL expression, for example the run date)
    and `key_column` the model's date key. A full build (the first run, or `--full-refresh`)
    builds every date up to `last_date`. An incremental run builds from the day after the
    latest date the table holds: a daily run builds one date, a run after a gap fills the gap,
    and a run for a date the table already holds (a replay) rebuilds that date alone. The
    model's delete+insert on `key_column` then replaces exactly the dates it built.
-#}
{% macro incremental_first_date(key_column, last_date) -%}
    {%- if is_incremental() -%}
        least({{ last_date }}, (select max(built.{{ key_column }}) + 1 as next_date from {{ this }} as built))
    {%- else -%}
        '-infinity'::date
    {%- endif -%}
{%- endmacro %}
