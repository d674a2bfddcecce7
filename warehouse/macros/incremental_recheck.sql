{#-
    The incremental strategy `recheck`: the model's rows replace the target's rows that match a
    condition, in the build's transaction. For a model that checks again a slice of its rows on
    each run and keeps the rest: the condition names that slice, so a row of it that the run no
    longer finds is deleted (delete+insert deletes only the keys it inserts).
    stg_raw__quarantined_rows is one.

    The model's `meta` key `rechecked_rows` names a macro that returns the condition. It is called
    here, when the model runs, rather than given as `incremental_predicates`: a config is fixed
    when dbt parses, and the slice depends on the run parameters, which are read only at run
    time (macros/run_parameter.sql).
-#}
{% macro get_incremental_recheck_sql(arg_dict) -%}
    {%- set rechecked_rows = config.meta_get('rechecked_rows') -%}
    {%- if not rechecked_rows or rechecked_rows not in context -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'recheck' needs meta rechecked_rows, the name of a macro that"
            ~ " returns the rows the run replaces as a SQL condition; got: " ~ rechecked_rows) }}
    {%- endif -%}
    delete from {{ arg_dict['target_relation'] }}
    where ({{ context[rechecked_rows]() | trim }});

    {{ insert_new_rows(arg_dict['target_relation'], arg_dict['temp_relation'], arg_dict['dest_columns']) }}
{%- endmacro %}
