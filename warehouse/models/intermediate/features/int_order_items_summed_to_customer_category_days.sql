-- Spend per customer, category and order day: the input of category entropy and of the
-- customer × offer category features (macros/customer_offer_features.sql).
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

customer_category_days as (

    select
        customer_id,
        category,
        ordered_date,
        sum(paid_amount) as spend_amount
    from order_items_to_add
    group by
        customer_id,
        category,
        ordered_date

)

select * from customer_category_days
