-- Customer × offer interaction features of each labelled impression, as of the day it was
-- shown: one row per (shown day D, customer, offer) shown at least once that day. Only data
-- from before D 00:00 UTC is used. The features are defined once, in
-- macros/customer_offer_features.sql; fct_scoring_candidates computes the same features for
-- the run date's candidates.
--
-- Incremental by as-of date (the shown day), like the labels it follows: a daily run adds
-- the impressions whose label became known on the run date.

{{ config(
    materialized='incremental',
    unique_key='as_of_date',
    indexes=[{'columns': ['as_of_date', 'customer_id', 'offer_id'], 'unique': true}],
) }}

{% set build_dates = incremental_build_date_bounds('as_of_date', var('label_window_days') + 1) %}

with

impressions_labelled as (

    select * from {{ ref('int_impressions_labelled') }}

),

-- a customer can be shown the same offer more than once a day
impression_pairs as (

    select distinct
        shown_date as as_of_date,
        customer_id,
        offer_id
    from impressions_labelled
    where
        shown_date >= {{ build_dates.first_date }}
        and shown_date <= {{ build_dates.last_date }}

),

{{ customer_offer_features('impression_pairs') }}

select * from customer_offer_features
