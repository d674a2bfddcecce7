-- Impressions whose label is known on the run date, with that label.
--
-- An impression shown on day S is labelled 1 when the same customer redeemed the same offer
-- at or after the moment it was shown and no later than day S + 7 (UTC days; a redemption on
-- day S + 7 counts, one on day S + 8 does not). Its label is known once day S + 7 has ended,
-- so only impressions with S + 7 < run date are kept: right-censored impressions are left
-- out, never counted as negatives, and no label reads a redemption made on or after the run
-- date.
--
-- Incremental by shown_date: a daily run labels the impressions whose window closed on the
-- run date (those shown on run date - 8) and keeps the labels it already has, which no later
-- data can change. feat_offer_daily, feat_customer_offer_daily and fct_training_examples all
-- read these labels, computed once per build even if redemptions land meanwhile.

{{ config(
    materialized='incremental',
    unique_key='shown_date',
    indexes=[{'columns': ['shown_date']}],
) }}

{% set label_window_days = var('label_window_days') %}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

build_dates as (

    {{ incremental_build_dates('shown_date', var('label_window_days') + 1) }}

),

-- scalar bounds, so the planner filters the impressions before joining them
closed_impressions as (

    select *
    from impressions
    where
        shown_date >= (select build_dates.first_date from build_dates)
        and shown_date <= (select build_dates.last_date from build_dates)

),

redemptions_in_windows as (

    select *
    from redemptions
    where
        redeemed_date >= (select build_dates.first_date from build_dates)
        and redeemed_date
        <= (select build_dates.last_date + {{ label_window_days }} as last_redeemed_date from build_dates)

),

redeemed_impressions as (

    select distinct closed_impressions.impression_id
    from closed_impressions
    inner join redemptions_in_windows
        on
            closed_impressions.customer_id = redemptions_in_windows.customer_id
            and closed_impressions.offer_id = redemptions_in_windows.offer_id
            and closed_impressions.shown_at <= redemptions_in_windows.redeemed_at
            and redemptions_in_windows.redeemed_date
            <= closed_impressions.shown_date + {{ label_window_days }}

),

impressions_labelled as (

    select
        closed_impressions.impression_id,
        closed_impressions.customer_id,
        closed_impressions.offer_id,
        closed_impressions.shown_at,
        closed_impressions.shown_date,
        case when redeemed_impressions.impression_id is null then 0 else 1 end as label
    from closed_impressions
    left join redeemed_impressions
        on closed_impressions.impression_id = redeemed_impressions.impression_id

)

select * from impressions_labelled
