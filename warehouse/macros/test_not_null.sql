{#-
    dbt's not_null test, returning whole rows rather than the null column alone (dbt does that
    only when it stores failures): the sample rows of a failed test (ml/data_tests.py) then show
    which row has no key. The count, and so the test's result, is the same. Reads no rows where
    the column is NOT NULL in the database (macros/enforced_constraints.sql).
-#}
{% macro default__test_not_null(model, column_name) %}

    select *
    from {{ model }}
    where
        {{ column_name }} is null
        {%- if enforced_not_null(model, column_name) %}
            and false
        {%- endif %}

{% endmacro %}
