{#- The node of the model named `name` in dbt's graph, or none: macros that read a model's YAML
    (its meta, its columns) at execution time, where ref() cannot give them. -#}
{% macro model_node(name) -%}
    {%- set nodes = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', name) | list -%}
    {{ return(nodes[0] if nodes else none) }}
{%- endmacro %}
