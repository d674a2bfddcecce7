{#-
    BI reads the marts through one role, OFFERRANK_READER_ROLE (default offerrank_reader): a
    NOLOGIN group role that BI logins are granted. `+grants` in dbt_project.yml give it SELECT on
    each marts table; the hooks here create the role where it is missing (on-run-start) and give
    it USAGE on the schemas of the tables it may read (on-run-end). The `ml` schema gets the same
    from ml/data.py, which creates its tables. Nothing grants it staging, intermediate or raw.
-#}
{% macro reader_role() -%}
    {#- The same default as ml/config.py and the `+grants` in dbt_project.yml. -#}
    {{- return(env_var('OFFERRANK_READER_ROLE', 'offerrank_reader')) -}}
{%- endmacro %}


{% macro create_reader_role() -%}
    {#-
        A role belongs to the whole server: a run on another database may create it at the same
        moment, and losing that race is fine. An existing role (say one a DBA made) is left as it
        is, so the dbt user needs CREATEROLE only where the role does not exist yet.
    -#}
    {%- set role = reader_role() -%}
    do $$
    begin
        if not exists (select from pg_roles where rolname = '{{ role | replace("'", "''") }}') then
            create role {{ adapter.quote(role) }} nologin;
        end if;
    exception when duplicate_object or unique_violation then
        null;
    end
    $$
{%- endmacro %}


{% macro grant_reader_schema_usage(results) -%}
    {#- USAGE on the schema of every model this run built that grants the reader SELECT: dbt's
        grants cover tables only. -#}
    {%- set role = reader_role() -%}
    {%- set schemas = [] -%}
    {%- for result in results
        if result.node.resource_type == 'model'
        and result.status == 'success'
        and role in (result.node.config.grants.get('select') or [])
        and result.node.schema not in schemas -%}
        {%- do schemas.append(result.node.schema) -%}
    {%- endfor -%}
    {%- for schema in schemas %}
    grant usage on schema {{ adapter.quote(schema) }} to {{ adapter.quote(role) }};
    {%- endfor -%}
{%- endmacro %}


{%- macro postgres__get_grant_sql(relation, privilege, grantees) -%}
    {#- dbt quotes grantees when it revokes but not when it grants: quote them here too, so that
        a role name with capitals or other characters reaches the right role. -#}
    {%- set quoted_grantees = [] -%}
    {%- for grantee in grantees -%}
        {%- do quoted_grantees.append(adapter.quote(grantee)) -%}
    {%- endfor -%}
    grant {{ privilege }} on {{ relation.render() }} to {{ quoted_grantees | join(', ') }}
{%- endmacro -%}
