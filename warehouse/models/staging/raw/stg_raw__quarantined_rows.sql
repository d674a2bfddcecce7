-- One row per raw row held back from every feature, label and candidate: the warn-severity rules
-- of macros/raw_quarantine.sql, each row under the first rule it breaks. The stg_raw__ models of
-- the checked tables leave these rows out. A table, so that detected_at is the time of the
-- build that found the row and the staging views do not run the checks again on every read.
{{ config(materialized='table') }}

with

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

offers as (

    select * from {{ ref('stg_raw__offers') }}

),

products as (

    select * from {{ ref('stg_raw__products') }}

),

orders as (

    select * from {{ ref('base_raw__orders') }}

),

order_items as (

    select * from {{ ref('base_raw__order_items') }}

),

impressions as (

    select * from {{ ref('base_raw__impressions') }}

),

redemptions as (

    select * from {{ ref('base_raw__redemptions') }}

),

interaction_events as (

    select * from {{ ref('base_raw__interaction_events') }}

),

reasons as (

    select * from (
        values
        {{ raw_quarantine_reasons() }}
    ) as reasons (source_table, rule_name, reason)

),

{#- In the order of raw_quarantine_rules(): a table's rules may read the tables checked before it. #}
{%- for table in raw_quarantine_rules() %}

{{ table }}_checked as (

    {{ raw_quarantine_checked_rows(table) }}

),
{%- endfor %}

quarantined as (
    {%- for table in raw_quarantine_rules() %}

    select
        '{{ table }}' as source_table,
        {{ raw_row_key(table, table ~ '_checked') }} as row_key,
        {{ table }}_checked.rule_name,
        to_jsonb({{ table }}_checked) - 'rule_name' as raw_row
    from {{ table }}_checked
    where {{ table }}_checked.rule_name is not null
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

described as (

    select
        quarantined.source_table,
        quarantined.row_key,
        quarantined.rule_name,
        reasons.reason,
        quarantined.raw_row,
        current_timestamp as detected_at
    from quarantined
    inner join reasons
        on
            quarantined.source_table = reasons.source_table
            and quarantined.rule_name = reasons.rule_name

)

select * from described
