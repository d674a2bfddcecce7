-- Spend per customer, product and order day, with the product's category: the input of the
-- customer × offer features (macros/customer_offer_features.sql), which look up a customer's
-- purchases of an offer's product in a lookback window (those of its category are read from
-- int_order_items_summed_to_customer_category_days, fewer rows).
--
-- Incremental by order day: a daily run adds the days loaded since the last run. Facts, not
-- features: a feature as of D reads the days before D alone.

{{ config(
    materialized='incremental',
    unique_key='ordered_date',
    indexes=[{'columns': ['ordered_date']}, {'columns': ['customer_id']}],
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

customer_product_days as (

    select
        customer_id,
        product_id,
        ordered_date,
        category,
        sum(paid_amount) as spend_amount
    from order_items_to_add
    group by
        customer_id,
        product_id,
        ordered_date,
        category

)

select * from customer_product_days
