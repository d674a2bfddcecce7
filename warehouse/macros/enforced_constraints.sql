{#-
    Whether the database itself forbids duplicates of `columns` in `model`: a table (not a view,
    nor a test's filtered subquery) with a valid unique index on exactly those columns, over the
    whole table, and each column NOT NULL (a unique index lets rows whose keys hold a null repeat,
    and the key tests count those as duplicates). A uniqueness test of such a table cannot fail,
    so it reads no rows: the raw tables the loader creates from the contract (ml/contract.py) have
    their primary keys, and scanning every raw row each day for what the key forbids was a large
    part of a daily build's test time. A table created without the key is scanned as before. A
    daily build gives such tests the table rather than its recent rows (tested_constraint_enforced
    in macros/recent_rows.sql), since a filtered subquery has no constraints.
-#}
{% macro enforced_unique(model, columns) -%}
    {%- set names = columns | map('lower') | sort -%}
    {%- set name_list -%}
        array[{%- for name in names -%}{{ sql_literal(name) }}{{ ', ' if not loop.last }}{%- endfor -%}]::name[]
    {%- endset -%}
    {%- set condition -%}
        exists (
            select
            from pg_catalog.pg_index as idx
            where
                idx.indrelid = tbl.oid
                and idx.indisunique
                and idx.indisvalid
                and idx.indpred is null
                and idx.indexprs is null
                and idx.indnatts = {{ names | length }}
                and array(
                    select att.attname
                    from pg_catalog.pg_attribute as att
                    where
                        att.attrelid = tbl.oid
                        and att.attnum = any(idx.indkey::int2 [])
                        and att.attnotnull
                    order by att.attname
                ) = {{ name_list }}
        )
    {%- endset -%}
    {{ return(table_in_catalog_where(model, condition)) }}
{%- endmacro %}

{#-
    Whether the database itself forbids nulls in `column` of `model`: a table (not a view, nor a
    test's filtered subquery) whose column is NOT NULL. A not-null test of such a column cannot
    fail, so it reads no rows (macros/test_not_null.sql): the raw tables' contract columns, and the
    scoring candidates' keys, which their model declares (macros/table_constraints.sql). A column
    name that is an expression matches no column, and is tested as before.
-#}
{% macro enforced_not_null(model, column) -%}
    {%- set condition -%}
        exists (
            select
            from pg_catalog.pg_attribute as att
            where
                att.attrelid = tbl.oid
                and att.attname = {{ sql_literal(column | lower) }}
                and att.attnotnull
                and not att.attisdropped
        )
    {%- endset -%}
    {{ return(table_in_catalog_where(model, condition)) }}
{%- endmacro %}

{#-
    Whether `model` is a table (an ordinary or partitioned one, not a view nor a test's filtered
    subquery) for which `condition`, a SQL boolean over its pg_class row `tbl`, holds.
-#}
{% macro table_in_catalog_where(model, condition) -%}
    {%- if not execute or model is string or model.identifier is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set query -%}
        select exists (
            select
            from pg_catalog.pg_class as tbl
            inner join pg_catalog.pg_namespace as nsp on tbl.relnamespace = nsp.oid
            where
                nsp.nspname = {{ sql_literal(model.schema) }}
                and tbl.relname = {{ sql_literal(model.identifier) }}
                and tbl.relkind in ('r', 'p')
                and {{ condition }}
        ) as enforced
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}

{#- `value` as a SQL string literal. -#}
{% macro sql_literal(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}

{#- dbt's unique test, reading no rows where the database enforces the key (above). -#}
{% macro default__test_unique(model, column_name) %}

    select
        {{ column_name }} as unique_field,
        count(*) as n_records
    from {{ model }}
    where
        {{ column_name }} is not null
        {%- if enforced_unique(model, [column_name]) %}
            and false
        {%- endif %}
    group by {{ column_name }}
    having count(*) > 1

{% endmacro %}
