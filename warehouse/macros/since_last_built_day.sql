{#-
    A where clause for an incremental table of daily facts keyed by `date_column`: on an
    incremental run, the rows from the newest day the table holds on (that day again, in case
    its rows were still arriving when it was last built); on a full build, or while the table is
    empty, every row.

    The day is read when the model compiles and written into its SQL as a literal: the planner
    estimates a literal from the date's statistics, where a `(select max(...))` subquery is
    always guessed at a third of the rows, and a third of the order lines is read by scanning
    them all rather than looking the day's orders' lines up by index.
-#}
{% macro since_last_built_day(date_column) -%}
    {%- if is_incremental() -%}
        {%- set last_built_query -%}
            select max({{ adapter.quote(date_column) }})::text from {{ this }}
        {%- endset -%}
        {%- set last_built_date = run_query(last_built_query).columns[0].values()[0] -%}
        {%- if last_built_date is not none -%}
            where {{ date_column }} >= '{{ last_built_date }}'::date
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
