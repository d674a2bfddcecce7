-- One row per raw row held back from every feature, label and candidate: the warn-severity rules
-- of macros/raw_quarantine.sql, each row under the first rule it breaks. The stg_raw__ models of
-- the checked tables leave these rows out. A table, so that the staging views do not run the
-- checks again on every read.
--
-- A daily build (run parameters as_of_date and test_recent_days, macros/run_parameter.sql, as the
-- Dagster asset builds) checks again the rows of its recent days, the days its tests read, and
-- the rows of no day, and keeps the earlier builds' verdicts on older rows: the `recheck`
-- strategy (macros/incremental_recheck.sql) replaces the verdicts of the rows it checked, which
-- meta rechecked_rows names. Any other build checks every row. A table built before row_date
-- existed is checked in full once.
{%- set has_row_dates = is_incremental()
    and adapter.get_columns_in_relation(this) | selectattr('name', 'equalto', 'row_date') | list -%}
{%- set start = recent_rows_start() if has_row_dates else none %}
-- random_page_cost 1.1, not PostgreSQL's default 4 (a disk seek per random page): the raw tables'
-- pages are cached or on SSD. At 4, a daily build read all 8.4M order lines (100k customers) to
-- keep the 0.6M of its recent orders, where looking them up by their key takes a sixth of the time
-- (docs/performance.md, "the quarantine looks the recent orders' lines up by key"). `set local`:
-- this model's transaction alone.
{{ config(
    materialized='incremental',
    incremental_strategy='recheck',
    pre_hook='set local random_page_cost = 1.1',
    meta={'rechecked_rows': 'raw_quarantine_rechecked_verdicts'},
    on_schema_change='append_new_columns',
) }}

with

-- not materialized: each reader scans the table with its own filter (on a daily build, the rows
-- of the recent days), where one shared copy of every row would be written and read again
all_customers as not materialized (

    select * from {{ ref('stg_raw__customers') }}

),

all_offers as not materialized (

    select * from {{ ref('stg_raw__offers') }}

),

all_products as not materialized (

    select * from {{ ref('stg_raw__products') }}

),

all_orders as not materialized (

    select * from {{ ref('base_raw__orders') }}

),

all_order_items as not materialized (

    select * from {{ ref('base_raw__order_items') }}

),

all_impressions as not materialized (

    select * from {{ ref('base_raw__impressions') }}

),

all_redemptions as not materialized (

    select * from {{ ref('base_raw__redemptions') }}

),

all_interaction_events as not materialized (

    select * from {{ ref('base_raw__interaction_events') }}

),
{%- if start is not none %}

-- the earlier builds' verdicts on the rows this build does not check again
previous_verdicts as (

    select * from {{ this }}
    where not ({{ raw_quarantine_rechecked(start) }})

),
{%- endif %}

reasons as (

    select * from (
        values
        {{ raw_quarantine_reasons() }}
    ) as reasons (source_table, rule_name, reason)

),

{#- In the order of raw_quarantine_rules(): a table's rules may read the tables checked before it.
    The rows to check are not materialized: a parent's (the recent orders) are read again by its
    child's (their lines), and only through the raw table does the planner know how many there are
    (from its date's statistics); a materialized CTE has none, and the recent orders' lines were
    estimated at 1.6M of 8.4M, not 0.6M, and read in full. #}
{%- for table in raw_quarantine_rules() %}

{{ table }} as not materialized (

    {{ raw_quarantine_rows_to_check(table, start) }}

),

{{ table }}_checked as (

    {{ raw_quarantine_checked_rows(table) }}

),
{%- if table in raw_quarantine_parents() %}

{{ table }}_quarantined as (

    {{ raw_quarantine_quarantined_keys(table, start is not none) }}

),
{%- endif %}
{%- endfor %}

quarantined as (
    {%- for table in raw_quarantine_rules() %}

    {{ raw_quarantine_found_rows(table) }}
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
        quarantined.row_date,
        quarantined.raw_row,
        current_timestamp as detected_at
    from quarantined
    inner join reasons
        on
            quarantined.source_table = reasons.source_table
            and quarantined.rule_name = reasons.rule_name

)

select * from described
