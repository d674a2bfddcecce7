-- Offer features as of each day D: one row per offer active on D (starts_on <= D <= ends_on)
-- and as-of date D. Only data from before D 00:00 UTC is used.
--
-- historical_redemption_rate uses the impressions of the offer whose label window closed
-- before D (shown on day S with S + 7 < D): their labels arrive on day S + 8, and the rate
-- is a running sum of those arrivals read off on each as-of date.

{% set label_window_days = var('label_window_days') %}

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

offer_spine as (

    select
        as_of_dates.as_of_date,
        offers.offer_id
    from as_of_dates
    inner join offers
        on as_of_dates.as_of_date between offers.starts_on and offers.ends_on

),

label_arrivals as (

    select
        offer_id,
        shown_date + {{ label_window_days + 1 }} as effective_date,
        count(*) as impression_count,
        sum(label) as redeemed_count
    from impressions_labelled
    group by
        offer_id,
        shown_date

),

spine_and_arrivals as (

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
    from label_arrivals

),

running_totals as (

    select
        offer_id,
        effective_date,
        is_as_of_row,
        -- the frame includes every row of the same day: labels arriving on D count for D
        sum(impression_count) over offer_history as impression_count,
        sum(redeemed_count) over offer_history as redeemed_count
    from spine_and_arrivals
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
