{#-
    A where clause for an incremental table of daily facts keyed by `date_column`: on an
    incremental run, the rows from the newest day the table holds on (that day again, in case
    its rows were still arriving when it was last built); on a full build, every row.
-#}
{% macro since_last_built_day(date_column) -%}
    {%- if is_incremental() -%}
        where {{ date_column }} >= (select max(built.{{ date_column }}) as last_built_date from {{ this }} as built)
    {%- endif -%}
{%- endmacro %}
