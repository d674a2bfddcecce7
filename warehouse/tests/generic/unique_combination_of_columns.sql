{#-
    The combination of `combination_of_columns` identifies a row: fails on every duplicate. Reads
    no rows where the database enforces that key (macros/enforced_constraints.sql).
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

    {%- set columns = combination_of_columns | join(', ') %}

    select
        {{ columns }},
        count(*) as duplicate_rows
    from {{ model }}
    {%- if enforced_unique(model, combination_of_columns) %}
        where false
    {%- endif %}
    group by {{ columns }}
    having count(*) > 1

{% endtest %}
