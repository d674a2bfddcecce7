-- Impressions whose label is known on the run date, with that label.
--
-- An impression shown on day S is labelled 1 when the same customer redeemed the same offer
-- at or after the moment it was shown and no later than day S + 7 (UTC days; a redemption on
-- day S + 7 counts, one on day S + 8 does not). Its label is known once day S + 7 has ended,
-- so only impressions with S + 7 < run date are kept: right-censored impressions are left
-- out, never counted as negatives, and no label reads a redemption made on or after the run
-- date.
--
-- A table, not a view: feat_offer_daily, the feature pairs and fct_training_examples all read
-- the same labels, computed once per build even if redemptions land meanwhile.

{{ config(materialized='table') }}

{% set label_window_days = var('label_window_days') %}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

run_dates as (

    select as_of_date as run_as_of_date
    from {{ ref('int_as_of_dates') }}
    where is_run_date

),

closed_impressions as (

    select impressions.*
    from impressions
    inner join run_dates
        on impressions.shown_date + {{ label_window_days }} < run_dates.run_as_of_date

),

redeemed_impressions as (

    select distinct closed_impressions.impression_id
    from closed_impressions
    inner join redemptions
        on
            closed_impressions.customer_id = redemptions.customer_id
            and closed_impressions.offer_id = redemptions.offer_id
            and closed_impressions.shown_at <= redemptions.redeemed_at
            and redemptions.redeemed_date <= closed_impressions.shown_date + {{ label_window_days }}

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
