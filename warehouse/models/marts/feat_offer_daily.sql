-- Offer features as of each day D: one row per offer active on D (starts_on <= D <= ends_on)
-- and as-of date D. Only data from before D 00:00 UTC is used.
--
-- historical_redemption_rate uses the offer's impressions whose label became known in the
-- lookback window: an impression shown on day S has its label on day S + 8 (its 7-day window
-- closed before that day), and counts for D exactly when S + 8 <= D < S + 8 + 90. The rate
-- is a running sum of these arrivals and departures read off on each as-of date; building
-- dates from F on needs the impressions shown from F - 98 on only.
--
-- Incremental by as-of date, like feat_customer_daily: a daily run builds the run date alone.

{{ config(
    materialized='incremental',
    unique_key='as_of_date',
    indexes=[{'columns': ['as_of_date', 'offer_id'], 'unique': true}],
) }}

{% set lookback_days = var('lookback_days') %}
{% set label_window_days = var('label_window_days') %}

{% set build_dates = incremental_build_date_bounds('as_of_date') %}

with

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

impressions_labelled as (

    select * from {{ ref('int_impressions_labelled') }}

),

-- the impressions whose label counts for some date to build: scalar bounds, so the planner
-- filters the labels before aggregating them
impressions_labelled_in_window as (

    select *
    from impressions_labelled
    where
        shown_date >= {{ build_dates.first_date }} - {{ lookback_days + label_window_days + 1 }}
        and shown_date <= {{ build_dates.last_date }} - {{ label_window_days + 1 }}

),

label_window_edges as (

    select *
    from (
        values ({{ label_window_days + 1 }}, 1), ({{ label_window_days + 1 + lookback_days }}, -1)
    ) as label_window_edges (days_after_shown, direction)

),

offer_spine as (

    select
        as_of_dates.as_of_date,
        offers.offer_id
    from as_of_dates
    inner join offers
        on as_of_dates.as_of_date between offers.starts_on and offers.ends_on
    where as_of_dates.as_of_date >= {{ build_dates.first_date }}

),

label_moves as (

    select
        impressions_labelled_in_window.offer_id,
        impressions_labelled_in_window.shown_date + label_window_edges.days_after_shown as effective_date,
        label_window_edges.direction * count(*) as impression_count,
        label_window_edges.direction * sum(impressions_labelled_in_window.label) as redeemed_count
    from impressions_labelled_in_window
    cross join label_window_edges
    group by
        impressions_labelled_in_window.offer_id,
        impressions_labelled_in_window.shown_date,
        label_window_edges.days_after_shown,
        label_window_edges.direction

),

spine_and_label_moves as (

    select
        offer_id,
        as_of_date as effective_date,
        true as is_as_of_row,
        0 as impression_count,
        0 as redeemed_count
    from offer_spine

    union all

    select
        offer_id,
        effective_date,
        false as is_as_of_row,
        impression_count,
        redeemed_count
    from label_moves

),

running_totals as (

    select
        offer_id,
        effective_date,
        is_as_of_row,
        -- the frame includes every row of the same day: labels arriving on D count for D
        sum(impression_count) over offer_history as impression_count,
        sum(redeemed_count) over offer_history as redeemed_count
    from spine_and_label_moves
    window offer_history as (
        partition by offer_id
        order by effective_date
        range between unbounded preceding and current row
    )

),

offer_features as (

    select
        running_totals.effective_date as as_of_date,
        offers.offer_id,
        offers.discount_depth::double precision as discount_depth,
        offers.margin_impact::double precision as margin_impact,
        (offers.ends_on - running_totals.effective_date)::integer as days_until_expiry,
        (
            running_totals.redeemed_count / nullif(running_totals.impression_count, 0)::numeric
        )::double precision as historical_redemption_rate,
        offers.is_own_brand::integer as is_own_brand,
        -- a store-wide offer has no category: 'store' tells it from a missing value
        coalesce(offers.category, 'store') as offer_category,
        offers.offer_scope,
        offers.category,
        offers.product_id,
        offers.target_business_type
    from running_totals
    inner join offers
        on running_totals.offer_id = offers.offer_id
    where running_totals.is_as_of_row

)

select * from offer_features
