-- One row per candidate offer of each logged visit of the off-policy window: for every customer
-- who was shown offers by the stochastic logging policy on a day of the window
-- (int_impressions_logged_in_window), every offer they could have been shown that day, with
-- every model feature as of that day (data from before its 00:00 UTC only) and what the
-- logging policy did with it: how many times it was shown, with what propensity, and how many
-- of those impressions were redeemed within the label window.
--
-- The candidates and their features come from macros/candidate_features.sql, as in
-- fct_scoring_candidates: ml/off_policy.py ranks each visit's candidates exactly as serving
-- ranks a run date's, and weighs the logged outcomes of the offers its lists hold by their
-- inverse propensity (docs/experiments.md, "Off-policy estimate").
--
-- Built only by the `off_policy` selector (selectors.yml): the off-policy estimate is run on
-- demand (`offerrank evaluate-offline`, the Dagster job `off_policy_evaluation`), not by the
-- daily run. A table, rebuilt whole: its rows are the window's visits (a few per customer),
-- never the whole history.

{{ config(
    tags=['off_policy'],
    post_hook="{{ add_table_constraints(primary_key=['as_of_date', 'customer_id', 'offer_id'], not_null=['has_redeemed_offer']) }}",
) }}

with

logged_impressions as (

    select * from {{ ref('int_impressions_logged_in_window') }}

),

logged_visits as (

    select distinct
        shown_date as as_of_date,
        customer_id
    from logged_impressions

),

-- The logging policy shows an offer at most once a visit, with one propensity per day and
-- business type (docs/simulator.md); grouping keeps any repeat as more impressions of the pair.
logged_pairs as (

    select
        shown_date as as_of_date,
        customer_id,
        offer_id,
        count(*) as logged_impressions,
        sum(label) as redeemed_impressions,
        avg(propensity)::double precision as propensity
    from logged_impressions
    group by
        shown_date,
        customer_id,
        offer_id

),

{{ candidate_pairs('logged_visits') }},

{{ candidate_features('candidate_pairs') }},

visit_candidates as (

    select
        candidates.*,
        coalesce(logged_pairs.logged_impressions, 0)::integer as logged_impressions,
        coalesce(logged_pairs.redeemed_impressions, 0)::integer as redeemed_impressions,
        logged_pairs.propensity
    from candidates
    left join logged_pairs
        on
            candidates.as_of_date = logged_pairs.as_of_date
            and candidates.customer_id = logged_pairs.customer_id
            and candidates.offer_id = logged_pairs.offer_id

)

select * from visit_candidates
