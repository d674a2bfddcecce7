-- Each customer's spend and last order day per category in the run date's lookback window
-- [D - lookback_days, D): the category features of the run date's candidates
-- (fct_scoring_candidates, through macros/customer_offer_features.sql with one_as_of_date), and
-- the category entropy of feat_customer_daily when a daily run builds the run date alone.
--
-- A table of its own, analysed when built, rather than an aggregate inside the candidates'
-- query: it needs only the order days, so dbt builds it before feat_customer_daily instead of
-- after it, and the candidates' query, left with joins of tables alone, runs in parallel
-- workers (docs/performance.md, "100,000 customers: the candidates' joins in parallel").
{{ config(
    materialized='table',
    post_hook=[
        "{{ add_table_constraints(primary_key=['as_of_date', 'customer_id', 'category']) }}",
        'analyze {{ this }}',
    ],
) }}

{% set lookback_days = var('lookback_days') %}

with

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

customer_category_days as (

    select * from {{ ref('int_order_items_summed_to_customer_category_days') }}

),

run_dates as (

    select as_of_date
    from as_of_dates
    where is_run_date

),

-- scalar bounds, so the planner reads the window's days through the table's date index
window_category_days as (

    select *
    from customer_category_days
    where
        ordered_date >= (select run_dates.as_of_date - {{ lookback_days }} from run_dates)
        and ordered_date < (select run_dates.as_of_date from run_dates)

),

customer_category_windows as (

    select
        (select run_dates.as_of_date from run_dates) as as_of_date,
        customer_id,
        category,
        sum(spend_amount) as category_spend_amount,
        max(ordered_date) as last_category_ordered_date
    from window_category_days
    group by
        customer_id,
        category

)

select * from customer_category_windows
