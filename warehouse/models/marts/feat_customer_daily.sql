-- Customer features as of each day D: one row per customer signed up by D and as-of date D.
-- Only orders placed strictly before D 00:00 UTC are used, and only those of the lookback
-- window [D - 90, D) (orders placed on days D - 90 to D - 1).
--
-- Incremental by as-of date: a daily run builds the run date alone (macros/
-- incremental_build_date_bounds.sql), reading only the orders of its lookback window, so its cost
-- follows one day's customers and one window of orders, not the whole history.
--
-- A purchase day P lies in the window of D exactly when P + 1 <= D <= P + 90: it enters the
-- window on P + 1 and leaves it on P + 91. Every window total is a running sum of these
-- entries and exits, read off on each as-of date: one sort per customer over rows linear in
-- purchase days and as-of dates, instead of joining each as-of date to every order in its
-- window (90 rows per order, and 90 per order line and category for the entropy). Building
-- dates from F on needs the purchases from F - 90 on only: an earlier purchase has entered
-- and left every window by F, so leaving it out changes no total from F on.
--
-- Category entropy is H = ln S - T / S, where S is the window spend and T is the sum over
-- categories of s_c ln s_c (s_c: window spend in category c). T is not additive over days, but
-- its term for category c changes only when s_c does, so the running sum of those changes
-- gives T on every day. Amounts are exact numerics, so entries and exits cancel exactly; each
-- s_c ln s_c term is kept as an integer number of millionths, a fixed function of s_c, so its
-- changes cancel exactly too (entropy is exact to about 1e-6 nats), and an incremental run
-- gives the same rows as a full build.
--
-- A daily run builds the run date alone, whose totals per customer and category
-- int_customer_category_windows_of_run_date has summed already for the scoring candidates: the
-- entropy reads them there rather than summing the window's 3.6M category days (at 100k
-- customers) a second time.
-- depends_on: {{ ref('int_customer_category_windows_of_run_date') }}

{{ config(
    materialized='incremental',
    unique_key='as_of_date',
    indexes=[{'columns': ['as_of_date', 'customer_id'], 'unique': true}],
) }}

{% set lookback_days = var('lookback_days') %}

{% set build_dates = incremental_build_date_bounds('as_of_date') %}
{% set builds_run_date_alone = is_incremental() and build_dates.first_date == build_dates.last_date %}

with

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

customer_days as (

    select * from {{ ref('int_order_items_summed_to_customer_days') }}

),

{% if builds_run_date_alone -%}
run_date_category_windows as (

    select * from {{ ref('int_customer_category_windows_of_run_date') }}

),
{%- else -%}
customer_category_days as (

    select * from {{ ref('int_order_items_summed_to_customer_category_days') }}

),
{%- endif %}

-- the days whose orders can be in the window of a date to build: scalar bounds, so the planner
-- filters the daily totals before aggregating them
customer_days_in_window as (

    select *
    from customer_days
    where
        ordered_date >= {{ build_dates.first_date }} - {{ lookback_days }}
        and ordered_date < {{ build_dates.last_date }}

),

{% if not builds_run_date_alone -%}
customer_category_days_in_window as (

    select *
    from customer_category_days
    where
        ordered_date >= {{ build_dates.first_date }} - {{ lookback_days }}
        and ordered_date < {{ build_dates.last_date }}

),
{%- endif %}

build_as_of_dates as (

    select as_of_dates.as_of_date
    from as_of_dates
    where as_of_dates.as_of_date >= {{ build_dates.first_date }}

),

customer_spine as (

    select
        build_as_of_dates.as_of_date,
        customers.customer_id
    from build_as_of_dates
    inner join customers
        on build_as_of_dates.as_of_date >= coalesce(customers.signup_date, build_as_of_dates.as_of_date)

),

{% if is_incremental() %}
-- An incremental run builds a few dates (one, daily): each date's window is summed directly,
-- in one pass over the window's rows, instead of sorting them for running sums.

build_spine_and_days as (

    select
        customer_spine.as_of_date,
        customer_spine.customer_id,
        customer_days_in_window.order_count,
        customer_days_in_window.weekday_order_count,
        customer_days_in_window.unit_count,
        customer_days_in_window.spend_amount,
        customer_days_in_window.promo_spend_amount,
        customer_days_in_window.promo_list_amount,
        customer_days_in_window.tier2_spend_amount,
        customer_days_in_window.tier3_spend_amount,
        customer_days_in_window.fresh_spend_amount,
        customer_days_in_window.ordered_date
    from customer_spine
    left join customer_days_in_window
        on
            customer_spine.customer_id = customer_days_in_window.customer_id
            and customer_spine.as_of_date - {{ lookback_days }} <= customer_days_in_window.ordered_date
            and customer_spine.as_of_date > customer_days_in_window.ordered_date

),

{% if builds_run_date_alone -%}
category_window_totals as (

    select
        as_of_date,
        customer_id,
        category_spend_amount
    from run_date_category_windows

),
{%- else -%}
category_window_totals as (

    select
        build_as_of_dates.as_of_date,
        customer_category_days_in_window.customer_id,
        sum(customer_category_days_in_window.spend_amount) as category_spend_amount
    from build_as_of_dates
    inner join customer_category_days_in_window
        on
            build_as_of_dates.as_of_date - {{ lookback_days }} <= customer_category_days_in_window.ordered_date
            and build_as_of_dates.as_of_date > customer_category_days_in_window.ordered_date
    group by
        build_as_of_dates.as_of_date,
        customer_category_days_in_window.customer_id,
        customer_category_days_in_window.category

),
{%- endif %}

entropy_sums as (

    select
        as_of_date,
        customer_id,
        sum({{ spend_log_spend_micros('category_spend_amount') }}) as spend_log_spend_micros
    from category_window_totals
    group by
        as_of_date,
        customer_id

),

window_totals as (

    select
        build_spine_and_days.as_of_date,
        build_spine_and_days.customer_id,
        coalesce(sum(build_spine_and_days.order_count), 0) as order_count,
        coalesce(sum(build_spine_and_days.weekday_order_count), 0) as weekday_order_count,
        coalesce(sum(build_spine_and_days.unit_count), 0) as unit_count,
        coalesce(sum(build_spine_and_days.spend_amount), 0) as spend_amount,
        coalesce(sum(build_spine_and_days.promo_spend_amount), 0) as promo_spend_amount,
        coalesce(sum(build_spine_and_days.promo_list_amount), 0) as promo_list_amount,
        coalesce(sum(build_spine_and_days.tier2_spend_amount), 0) as tier2_spend_amount,
        coalesce(sum(build_spine_and_days.tier3_spend_amount), 0) as tier3_spend_amount,
        coalesce(sum(build_spine_and_days.fresh_spend_amount), 0) as fresh_spend_amount,
        coalesce(max(entropy_sums.spend_log_spend_micros), 0) as spend_log_spend_micros,
        max(build_spine_and_days.ordered_date) as last_ordered_date
    from build_spine_and_days
    left join entropy_sums
        on
            build_spine_and_days.as_of_date = entropy_sums.as_of_date
            and build_spine_and_days.customer_id = entropy_sums.customer_id
    group by
        build_spine_and_days.as_of_date,
        build_spine_and_days.customer_id

),

{% else %}
-- A full build covers every date: window totals are running sums over all of them.

window_edges as (

    select *
    from (
        values (1, 1), ({{ lookback_days + 1 }}, -1)
    ) as window_edges (days_after_purchase, direction)

),

purchase_window_moves as (

    select
        customer_days_in_window.customer_id,
        customer_days_in_window.ordered_date + window_edges.days_after_purchase as effective_date,
        window_edges.direction * customer_days_in_window.order_count as order_count,
        window_edges.direction * customer_days_in_window.weekday_order_count as weekday_order_count,
        window_edges.direction * customer_days_in_window.unit_count as unit_count,
        window_edges.direction * customer_days_in_window.spend_amount as spend_amount,
        window_edges.direction * customer_days_in_window.promo_spend_amount as promo_spend_amount,
        window_edges.direction * customer_days_in_window.promo_list_amount as promo_list_amount,
        window_edges.direction * customer_days_in_window.tier2_spend_amount as tier2_spend_amount,
        window_edges.direction * customer_days_in_window.tier3_spend_amount as tier3_spend_amount,
        window_edges.direction * customer_days_in_window.fresh_spend_amount as fresh_spend_amount,
        case when window_edges.direction = 1 then customer_days_in_window.ordered_date end as ordered_date
    from customer_days_in_window
    cross join window_edges

),

category_window_moves as (

    select
        customer_category_days_in_window.customer_id,
        customer_category_days_in_window.category,
        customer_category_days_in_window.ordered_date
        + window_edges.days_after_purchase as effective_date,
        window_edges.direction * customer_category_days_in_window.spend_amount as spend_change
    from customer_category_days_in_window
    cross join window_edges

),

category_window_totals as (

    select
        customer_id,
        category,
        effective_date,
        -- rows of the same day share the same total: the one at the end of that day
        sum(spend_change) over (
            partition by customer_id, category
            order by effective_date
            range between unbounded preceding and current row
        ) as category_spend_amount
    from category_window_moves

),

category_entropy_terms as (

    select
        customer_id,
        category,
        effective_date,
        {{ spend_log_spend_micros('category_spend_amount') }} as spend_log_spend_micros
    from category_window_totals

),

entropy_term_changes as (

    select
        customer_id,
        effective_date,
        spend_log_spend_micros - coalesce(
            lag(spend_log_spend_micros) over (
                partition by customer_id, category
                order by effective_date
            ),
            0
        ) as spend_log_spend_micros_change
    from category_entropy_terms

),

spine_and_moves as (

    select
        customer_id,
        as_of_date as effective_date,
        true as is_as_of_row,
        0 as order_count,
        0 as weekday_order_count,
        0 as unit_count,
        0 as spend_amount,
        0 as promo_spend_amount,
        0 as promo_list_amount,
        0 as tier2_spend_amount,
        0 as tier3_spend_amount,
        0 as fresh_spend_amount,
        0 as spend_log_spend_micros_change,
        null::date as ordered_date
    from customer_spine

    union all

    select
        customer_id,
        effective_date,
        false as is_as_of_row,
        order_count,
        weekday_order_count,
        unit_count,
        spend_amount,
        promo_spend_amount,
        promo_list_amount,
        tier2_spend_amount,
        tier3_spend_amount,
        fresh_spend_amount,
        0 as spend_log_spend_micros_change,
        ordered_date
    from purchase_window_moves

    union all

    select
        customer_id,
        effective_date,
        false as is_as_of_row,
        0 as order_count,
        0 as weekday_order_count,
        0 as unit_count,
        0 as spend_amount,
        0 as promo_spend_amount,
        0 as promo_list_amount,
        0 as tier2_spend_amount,
        0 as tier3_spend_amount,
        0 as fresh_spend_amount,
        spend_log_spend_micros_change,
        null::date as ordered_date
    from entropy_term_changes

),

running_totals as (

    select
        customer_id,
        effective_date,
        is_as_of_row,
        -- the frame includes every row of the same day, so moves effective on D count for D
        sum(order_count) over customer_history as order_count,
        sum(weekday_order_count) over customer_history as weekday_order_count,
        sum(unit_count) over customer_history as unit_count,
        sum(spend_amount) over customer_history as spend_amount,
        sum(promo_spend_amount) over customer_history as promo_spend_amount,
        sum(promo_list_amount) over customer_history as promo_list_amount,
        sum(tier2_spend_amount) over customer_history as tier2_spend_amount,
        sum(tier3_spend_amount) over customer_history as tier3_spend_amount,
        sum(fresh_spend_amount) over customer_history as fresh_spend_amount,
        sum(spend_log_spend_micros_change) over customer_history as spend_log_spend_micros,
        max(ordered_date) over customer_history as last_ordered_date
    from spine_and_moves
    window customer_history as (
        partition by customer_id
        order by effective_date
        range between unbounded preceding and current row
    )

),

window_totals as (

    select
        effective_date as as_of_date,
        customer_id,
        order_count,
        weekday_order_count,
        unit_count,
        spend_amount,
        promo_spend_amount,
        promo_list_amount,
        tier2_spend_amount,
        tier3_spend_amount,
        fresh_spend_amount,
        spend_log_spend_micros,
        last_ordered_date
    from running_totals
    where is_as_of_row

),

{% endif %}
customer_window_features as (

    select
        as_of_date,
        customer_id,
        case
            when order_count > 0 then (as_of_date - last_ordered_date)::integer
        end as recency_days,
        order_count::integer as frequency,
        spend_amount::double precision as monetary,
        (promo_spend_amount / nullif(spend_amount, 0))::double precision as promo_affinity,
        (spend_amount / nullif(order_count, 0))::double precision as avg_basket_size,
        (unit_count / nullif(order_count, 0)::numeric)::double precision as avg_basket_quantity,
        (tier2_spend_amount / nullif(spend_amount, 0))::double precision as tier2_purchase_ratio,
        (tier3_spend_amount / nullif(spend_amount, 0))::double precision as tier3_purchase_ratio,
        (fresh_spend_amount / nullif(spend_amount, 0))::double precision as fresh_category_ratio,
        (weekday_order_count / nullif(order_count, 0)::numeric)::double precision
            as business_order_ratio,
        case
            when spend_amount > 0
                then
                    -- H = ln S - T / S, clamped and rounded to the precision of T
                    greatest(
                        round(
                            (
                                ln(spend_amount::double precision)
                                - spend_log_spend_micros / 1e6 / spend_amount::double precision
                            )::numeric,
                            6
                        ),
                        0
                    )
        end::double precision as category_entropy,
        (1 - promo_spend_amount / nullif(promo_list_amount, 0))::double precision
            as usual_discount_depth
    from window_totals

),

-- the customer's attributes, as loaded: not dated, so the same on every as-of date
customer_features as (

    select
        customer_window_features.*,
        customers.business_type
    from customer_window_features
    inner join customers
        on customer_window_features.customer_id = customers.customer_id

)

select * from customer_features
