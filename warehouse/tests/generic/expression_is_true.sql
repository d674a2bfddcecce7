{#- `expression` (a SQL predicate on one row) holds on every row: fails on each row where it is false. -#}
{% test expression_is_true(model, expression) %}

    select *
    from {{ model }}
    where not ({{ expression }})

{% endtest %}
