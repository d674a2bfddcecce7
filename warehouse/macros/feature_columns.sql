{#-
    The model features a feature mart declares, as select-list items qualified by
    `relation_alias`, each preceded by a comma: call it right after the last key column, as
    `key_column {{- feature_columns(...) }}`.

    A column is a model feature when its YAML says `config: {meta: {feature: true}}`: the one
    place the feature list is declared. fct_training_examples and fct_scoring_candidates select
    the features through this macro, and ml/features.py reads the same flags from the manifest,
    so a documented, flagged column added to a feature mart reaches training and scoring with
    no other edit. Unit tests render models without the project graph: there the list is empty,
    and the tests check the key columns.
-#}
{% macro feature_columns(model_name, relation_alias) -%}
    {%- if execute and graph.nodes is defined -%}
        {%- set features = [] -%}
        {%- set node = model_node(model_name) -%}
        {%- for column in (node.columns.values() if node else []) -%}
            {%- set meta = column.get('meta') or {} -%}
            {%- set config_meta = (column.get('config') or {}).get('meta') or {} -%}
            {%- if meta.get('feature') or config_meta.get('feature') -%}
                {%- do features.append(column.name) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not features -%}
            {{ exceptions.raise_compiler_error(
                "model " ~ model_name ~ " declares no feature columns: flag them in its YAML"
                ~ " with config: {meta: {feature: true}}"
            ) }}
        {%- endif -%}
        {%- for feature in features %},
        {{ relation_alias }}.{{ feature }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
