{#-
    Models land in the schema named by their folder config (`staging`, `intermediate`,
    `marts`) exactly, not `<target schema>_<custom schema>`: one warehouse per database, so
    the Python side can name the schemas without knowing the dbt target.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
