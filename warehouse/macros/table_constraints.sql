{#-
    A post-hook that makes the database enforce a table model's grain: `primary_key` (its columns
    become NOT NULL and get a unique index) and NOT NULL on the `not_null` columns. The model's
    uniqueness and not-null tests on those columns then read no rows (macros/enforced_constraints.sql):
    for the scoring candidates (4.9M rows at 100k customers) building the key's index costs less
    than the four scans it saves, and the scoring stage, which reads the rows by this key, gets an
    index to read them by. For models whose columns come from the feature marts' YAML (a contract
    would list each feature again); a model with a fixed set of columns declares an enforced
    contract instead.
-#}
{% macro add_table_constraints(primary_key, not_null=[]) -%}
    alter table {{ this }}
        add primary key ({% for column in primary_key %}{{ adapter.quote(column) }}{{ ', ' if not loop.last }}{% endfor %})
        {%- for column in not_null %},
        alter column {{ adapter.quote(column) }} set not null
        {%- endfor %}
{%- endmacro %}
