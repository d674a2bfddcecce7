-- Spend per customer, category and order day: the input of category entropy.
--
-- Incremental by order day, up to the day before the run date: a daily run adds that one day's
-- orders, so the features' lookback windows are summed from these daily rows rather than from
-- every order line again.

{{ config(
    materialized='incremental',
    unique_key='ordered_date',
    indexes=[{'columns': ['ordered_date']}],
) }}

with

order_items as (

    select * from {{ ref('int_order_items_joined') }}

),

run_dates as (

    select as_of_date
    from {{ ref('int_as_of_dates') }}
    where is_run_date

),

build_dates as (

    select
        {{ incremental_first_date('ordered_date', 'run_dates.as_of_date - 1') }} as first_ordered_date,
        run_dates.as_of_date - 1 as last_ordered_date
    from run_dates

),

-- scalar bounds, so the planner reads the days to build alone
order_items_to_add as (

    select *
    from order_items
    where
        ordered_date >= (select build_dates.first_ordered_date from build_dates)
        and ordered_date <= (select build_dates.last_ordered_date from build_dates)

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
