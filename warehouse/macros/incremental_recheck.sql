{#-
    The incremental strategy `recheck`: the model's rows replace the target's rows that match the
    model's `incremental_predicates`, in the build's transaction. For a model that checks again a
    slice of its rows on each run and keeps the rest: the predicates name that slice, so a row
    of it that the run no longer finds is deleted (delete+insert deletes only the keys it
    inserts). stg_raw__quarantined_rows is one.
-#}
{% macro get_incremental_recheck_sql(arg_dict) -%}
    {%- set predicates = arg_dict['incremental_predicates'] -%}
    {%- if not predicates -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'recheck' needs incremental_predicates: the rows the run replaces") }}
    {%- endif -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ arg_dict['target_relation'] }}
    where ({{ predicates | join(') and (') }});

    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }}
    from {{ arg_dict['temp_relation'] }}
{%- endmacro %}
