-- One row per customer × offer pair to score on the run date, with every model feature as
-- of that date (data from before its 00:00 UTC only). The candidates are every customer who
-- has signed up by then × every offer active that day, except offers targeted at another
-- business type (they are never shown to that customer). The feature columns are those the
-- feature marts' YAML flags `meta: {feature: true}` (macros/feature_columns.sql), the same
-- as in fct_training_examples; the interaction features come from the same macro as
-- feat_customer_offer_daily's, computed here for the candidates alone. has_redeemed_offer is
-- not a feature: the re-ranker (ml/rerank.py) never recommends an offer already redeemed.

with

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

customer_features as (

    select * from {{ ref('feat_customer_daily') }}

),

offer_features as (

    select * from {{ ref('feat_offer_daily') }}

),

redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

run_dates as (

    select as_of_date
    from {{ ref('int_as_of_dates') }}
    where is_run_date

),

scoring_pairs as (

    select
        run_dates.as_of_date,
        customers.customer_id,
        offers.offer_id
    from run_dates
    inner join offers
        on run_dates.as_of_date between offers.starts_on and offers.ends_on
    inner join customers
        on
            run_dates.as_of_date >= coalesce(customers.signup_date, run_dates.as_of_date)
            and (
                offers.target_business_type is null
                or offers.target_business_type = customers.business_type
            )

),

-- scalar filters, so the planner reads the run date's rows through the tables' indexes
customer_features_on_run_date as (

    select *
    from customer_features
    where as_of_date = (select run_dates.as_of_date from run_dates)

),

offer_features_on_run_date as (

    select *
    from offer_features
    where as_of_date = (select run_dates.as_of_date from run_dates)

),

-- redemptions before the run date's 00:00 UTC, one row per customer and offer
offers_redeemed_before_run_date as (

    select distinct
        redemptions.customer_id,
        redemptions.offer_id
    from redemptions
    where redemptions.redeemed_date < (select run_dates.as_of_date from run_dates)

),

{{ customer_offer_features('scoring_pairs') }},

scoring_candidates as (

    select
        scoring_pairs.as_of_date,
        scoring_pairs.customer_id,
        scoring_pairs.offer_id
        {{- feature_columns('feat_customer_daily', 'customer_features_on_run_date') }}
        {{- feature_columns('feat_offer_daily', 'offer_features_on_run_date') }}
        {{- feature_columns('feat_customer_offer_daily', 'customer_offer_features') }},
        offers_redeemed_before_run_date.offer_id is not null as has_redeemed_offer
    from scoring_pairs
    left join customer_features_on_run_date
        on
            scoring_pairs.as_of_date = customer_features_on_run_date.as_of_date
            and scoring_pairs.customer_id = customer_features_on_run_date.customer_id
    left join offer_features_on_run_date
        on
            scoring_pairs.as_of_date = offer_features_on_run_date.as_of_date
            and scoring_pairs.offer_id = offer_features_on_run_date.offer_id
    left join customer_offer_features
        on
            scoring_pairs.as_of_date = customer_offer_features.as_of_date
            and scoring_pairs.customer_id = customer_offer_features.customer_id
            and scoring_pairs.offer_id = customer_offer_features.offer_id
    left join offers_redeemed_before_run_date
        on
            scoring_pairs.customer_id = offers_redeemed_before_run_date.customer_id
            and scoring_pairs.offer_id = offers_redeemed_before_run_date.offer_id

)

select * from scoring_candidates
