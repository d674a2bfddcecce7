-- Impressions whose label is known on the run date, with that label and a graded relevance.
--
-- An impression shown on day S is labelled 1 when the same customer redeemed the same offer
-- at or after the moment it was shown and no later than day S + 7 (UTC days; a redemption on
-- day S + 7 counts, one on day S + 8 does not). Its label is known once day S + 7 has ended,
-- so only impressions with S + 7 < run date are kept: right-censored impressions are left
-- out, never counted as negatives, and no label reads a redemption made on or after the run
-- date.
--
-- Its graded relevance, for ranking, reads the same window (events at or after shown_at, by the
-- end of day S + 7) and ranks redeem above click above view above dismiss:
--   3  redeemed (label = 1);
--   2  else a click on the impression;
--   0  else a dismiss (a dismiss overrides the view that came with it, not a click);
--   1  else a view;
--   0  else (no event in the window).
-- Without interaction events (an optional table) relevance is 3 or 0, the label times 3.
--
-- Incremental by shown_date: a daily run labels the impressions whose window closed on the
-- run date (those shown on run date - 8) and keeps the labels and grades it already has,
-- which no later data can change. feat_offer_daily, feat_customer_offer_daily and
-- fct_training_examples all read these labels, computed once per build even if redemptions
-- land meanwhile.

{{ config(
    materialized='incremental',
    unique_key='shown_date',
    indexes=[{'columns': ['shown_date']}],
) }}

{% set label_window_days = var('label_window_days') %}

{% set build_dates = incremental_build_date_bounds('shown_date', var('label_window_days') + 1) %}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

interaction_events as (

    select * from {{ ref('stg_raw__interaction_events') }}

),

-- scalar bounds, so the planner filters the impressions before joining them
closed_impressions as (

    select *
    from impressions
    where
        shown_date >= {{ build_dates.first_date }}
        and shown_date <= {{ build_dates.last_date }}

),

redemptions_in_windows as (

    select *
    from redemptions
    where
        redeemed_date >= {{ build_dates.first_date }}
        and redeemed_date
        <= {{ build_dates.last_date }} + {{ label_window_days }}

),

interaction_events_in_windows as (

    select *
    from interaction_events
    where
        event_date >= {{ build_dates.first_date }}
        and event_date
        <= {{ build_dates.last_date }} + {{ label_window_days }}

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

impression_reactions as (

    select
        closed_impressions.impression_id,
        bool_or(interaction_events_in_windows.event_type = 'click') as is_clicked,
        bool_or(interaction_events_in_windows.event_type = 'dismiss') as is_dismissed,
        bool_or(interaction_events_in_windows.event_type = 'view') as is_viewed
    from closed_impressions
    inner join interaction_events_in_windows
        on
            closed_impressions.impression_id = interaction_events_in_windows.impression_id
            and closed_impressions.shown_at <= interaction_events_in_windows.event_at
            and interaction_events_in_windows.event_date
            <= closed_impressions.shown_date + {{ label_window_days }}
    group by closed_impressions.impression_id

),

impressions_labelled as (

    select
        closed_impressions.impression_id,
        closed_impressions.customer_id,
        closed_impressions.offer_id,
        closed_impressions.shown_at,
        closed_impressions.shown_date,
        case when redeemed_impressions.impression_id is null then 0 else 1 end as label,
        case
            when redeemed_impressions.impression_id is not null then 3
            when impression_reactions.is_clicked then 2
            when impression_reactions.is_dismissed then 0
            when impression_reactions.is_viewed then 1
            else 0
        end as relevance
    from closed_impressions
    left join redeemed_impressions
        on closed_impressions.impression_id = redeemed_impressions.impression_id
    left join impression_reactions
        on closed_impressions.impression_id = impression_reactions.impression_id

)

select * from impressions_labelled
