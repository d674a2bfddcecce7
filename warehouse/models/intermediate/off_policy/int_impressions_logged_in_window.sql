-- The impressions of the off-policy window, one row per impression with its propensity and
-- label: those a stochastic logging policy chose (propensity < 1; a deterministic policy's
-- impressions, such as offerrank's own served lists, propensity 1, cannot weigh another policy)
-- and whose label is known. The window is the last `off_policy_window_days` UTC days of them,
-- up to the last day with such impressions.
--
-- Built only by the `off_policy` selector (selectors.yml), with fct_logged_visit_candidates.

{{ config(tags=['off_policy']) }}

{% set window_days = var('off_policy_window_days') %}

with

labelled_impressions as (

    select * from {{ ref('int_impressions_labelled_with_propensities') }}

),

stochastic_impressions as (

    select *
    from labelled_impressions
    where propensity < 1

),

window_bounds as (

    select
        max(shown_date) - {{ window_days - 1 }} as window_start_date,
        max(shown_date) as window_end_date
    from stochastic_impressions

),

impressions_in_window as (

    select
        stochastic_impressions.impression_id,
        stochastic_impressions.customer_id,
        stochastic_impressions.offer_id,
        stochastic_impressions.shown_date,
        stochastic_impressions.propensity,
        stochastic_impressions.label,
        window_bounds.window_start_date,
        window_bounds.window_end_date
    from stochastic_impressions
    cross join window_bounds
    where stochastic_impressions.shown_date >= window_bounds.window_start_date

)

select * from impressions_in_window
