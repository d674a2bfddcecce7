{#-
    The column equals `value` exactly when `condition` (a SQL predicate on the same row) holds:
    fails on every row where one is true and the other is not (or either is null).
-#}
{% test equals_exactly_when(model, column_name, value, condition) %}

    select
        {{ column_name }},
        ({{ condition }}) as condition_holds
    from {{ model }}
    where ({{ column_name }} = {{ value }}) is distinct from ({{ condition }})

{% endtest %}
