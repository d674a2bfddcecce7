-- One row per impression whose label is known on the run date, with its label, its graded
-- relevance (int_impressions_labelled) and every model feature as of the day it was shown
-- (data from before that day's 00:00 UTC only).
-- The feature columns are those the feature marts' YAML flags `meta: {feature: true}`
-- (macros/feature_columns.sql), the same as in fct_scoring_candidates.
--
-- Incremental by shown_date, like the labels: a daily run adds the impressions whose label
-- became known on the run date. A run for an earlier date (a replay) leaves the later rows
-- in place: readers take the rows with shown_date <= dim_run_date.last_labelled_shown_date.

{{ config(
    materialized='incremental',
    unique_key='shown_date',
    indexes=[{'columns': ['shown_date']}, {'columns': ['impression_id'], 'unique': true}],
) }}

{% set build_dates = incremental_build_date_bounds('shown_date', var('label_window_days') + 1) %}

with

impressions_labelled as (

    select * from {{ ref('int_impressions_labelled') }}

),

customer_features as (

    select * from {{ ref('feat_customer_daily') }}

),

offer_features as (

    select * from {{ ref('feat_offer_daily') }}

),

customer_offer_features as (

    select * from {{ ref('feat_customer_offer_daily') }}

),

impressions_to_add as (

    select *
    from impressions_labelled
    where
        shown_date >= {{ build_dates.first_date }}
        and shown_date <= {{ build_dates.last_date }}

),

training_examples as (

    select
        impressions_to_add.impression_id,
        impressions_to_add.customer_id,
        impressions_to_add.offer_id,
        impressions_to_add.shown_at,
        impressions_to_add.shown_date,
        impressions_to_add.label,
        impressions_to_add.relevance
        {{- feature_columns('feat_customer_daily', 'customer_features') }}
        {{- feature_columns('feat_offer_daily', 'offer_features') }}
        {{- feature_columns('feat_customer_offer_daily', 'customer_offer_features') }}
    from impressions_to_add
    -- the scalar bounds let the planner read the build's dates alone, through the indexes
    left join customer_features
        on
            impressions_to_add.shown_date = customer_features.as_of_date
            and impressions_to_add.customer_id = customer_features.customer_id
            and customer_features.as_of_date >= {{ build_dates.first_date }}
            and customer_features.as_of_date <= {{ build_dates.last_date }}
    left join offer_features
        on
            impressions_to_add.shown_date = offer_features.as_of_date
            and impressions_to_add.offer_id = offer_features.offer_id
            and offer_features.as_of_date >= {{ build_dates.first_date }}
            and offer_features.as_of_date <= {{ build_dates.last_date }}
    left join customer_offer_features
        on
            impressions_to_add.shown_date = customer_offer_features.as_of_date
            and impressions_to_add.customer_id = customer_offer_features.customer_id
            and impressions_to_add.offer_id = customer_offer_features.offer_id
            and customer_offer_features.as_of_date >= {{ build_dates.first_date }}
            and customer_offer_features.as_of_date <= {{ build_dates.last_date }}

)

select * from training_examples
