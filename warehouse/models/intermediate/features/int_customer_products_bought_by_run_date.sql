-- The offer products each customer bought in the run date's lookback window [D - lookback_days,
-- D): bought_product_before of the run date's candidates (fct_scoring_candidates, through
-- macros/customer_offer_features.sql with one_as_of_date). Only the products of the offers
-- active on the run date: any other purchase counts through its category alone.
--
-- A table of its own, analysed when built, for the reasons its sibling
-- int_customer_category_windows_of_run_date gives: built from the order days alone, and the
-- candidates' query left with joins of tables alone.
{{ config(
    materialized='table',
    post_hook=[
        "{{ add_table_constraints(primary_key=['as_of_date', 'customer_id', 'product_id']) }}",
        'analyze {{ this }}',
    ],
) }}

{% set lookback_days = var('lookback_days') %}

with

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

customer_product_days as (

    select * from {{ ref('int_order_items_summed_to_customer_product_days') }}

),

run_dates as (

    select as_of_date
    from as_of_dates
    where is_run_date

),

offer_products as (

    select distinct offers.product_id
    from offers
    where
        offers.product_id is not null
        and (select run_dates.as_of_date from run_dates) between offers.starts_on and offers.ends_on

),

-- scalar bounds, so the planner reads the window's days through the table's date index
window_products_bought as (

    select distinct
        customer_product_days.customer_id,
        customer_product_days.product_id
    from customer_product_days
    inner join offer_products
        on customer_product_days.product_id = offer_products.product_id
    where
        customer_product_days.ordered_date
        >= (select run_dates.as_of_date - {{ lookback_days }} from run_dates)
        and customer_product_days.ordered_date < (select run_dates.as_of_date from run_dates)

),

customer_products_bought as (

    select
        run_dates.as_of_date,
        window_products_bought.customer_id,
        window_products_bought.product_id
    from window_products_bought
    cross join run_dates

)

select * from customer_products_bought
