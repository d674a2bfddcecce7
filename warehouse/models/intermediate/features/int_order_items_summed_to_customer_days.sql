-- What each customer bought on each day they ordered: additive totals that the lookback
-- window of feat_customer_daily sums up. Amounts are exact numerics.
--
-- Incremental by order day: a daily run adds the days loaded since the last run, so the
-- features' lookback windows are summed from these daily rows rather than from every order line
-- again. Facts, not features: a feature as of D reads the days before D alone.

{{ config(
    materialized='incremental',
    unique_key='ordered_date',
    indexes=[{'columns': ['ordered_date']}],
) }}

with

order_items as (

    select * from {{ ref('int_order_items_joined') }}

),

order_items_to_add as (

    select *
    from order_items
    {{ since_last_built_day('ordered_date') }}

),

customer_days as (

    select
        customer_id,
        ordered_date,
        count(distinct order_id) as order_count,
        count(distinct order_id) filter (where is_weekday_order) as weekday_order_count,
        sum(quantity) as unit_count,
        sum(paid_amount) as spend_amount,
        coalesce(sum(paid_amount) filter (where is_promo), 0) as promo_spend_amount,
        coalesce(sum(list_amount) filter (where is_promo), 0) as promo_list_amount,
        coalesce(sum(paid_amount) filter (where price_tier = 2), 0) as tier2_spend_amount,
        coalesce(sum(paid_amount) filter (where price_tier = 3), 0) as tier3_spend_amount,
        coalesce(sum(paid_amount) filter (where is_fresh), 0) as fresh_spend_amount
    from order_items_to_add
    group by
        customer_id,
        ordered_date

)

select * from customer_days
