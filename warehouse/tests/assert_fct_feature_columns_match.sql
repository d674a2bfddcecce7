-- fct_training_examples and fct_scoring_candidates declare the same feature columns
-- (meta: {feature: true}) in the same order: a model trained on one can score the other.
-- Returns one row when they differ or when no feature is declared.
{{ config(meta={'dagster': {'ref': {'name': 'fct_scoring_candidates'}}}) }}
-- depends_on: {{ ref('fct_training_examples') }}
-- depends_on: {{ ref('fct_scoring_candidates') }}

{%- set features = {} -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model'
            and node.name in ['fct_training_examples', 'fct_scoring_candidates'] -%}
            {%- set names = [] -%}
            {%- for name, column in node.columns.items() -%}
                {%- if (column.meta or {}).get('feature')
                    or ((column.config or {}).get('meta') or {}).get('feature') -%}
                    {%- do names.append(name) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- do features.update({node.name: names}) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

{%- set training = features.get('fct_training_examples', []) -%}
{%- set scoring = features.get('fct_scoring_candidates', []) %}

select
    '{{ training | join(",") }}' as training_features,
    '{{ scoring | join(",") }}' as scoring_features
where {{ 'true' if (training != scoring or training | length == 0) else 'false' }}
