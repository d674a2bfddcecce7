{#-
    Every offer a customer may be shown on a day, with every model feature as of that day, for
    the customer days in the CTE named `customer_days` (columns as_of_date, customer_id): CTEs
    that end in one named `candidates` (keys as_of_date, customer_id, offer_id, the features,
    has_redeemed_offer).

    The one definition of a candidate: fct_scoring_candidates calls it for the run date's
    customers, fct_logged_visit_candidates for the logged visits of the off-policy window, so
    the policy evaluated offline ranks exactly what serving would have ranked. A candidate is
    an offer active that day (starts_on <= as_of_date <= ends_on), unless it is targeted at
    another business type than the customer's (never shown to them). Features as of D use data
    from before D 00:00 UTC only; has_redeemed_offer (not a feature: ml/rerank.py never
    recommends such an offer) counts redemptions on UTC days before D.
-#}
{% macro candidate_features(customer_days) -%}

candidate_customers as (

    select * from {{ ref('stg_raw__customers') }}

),

candidate_offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

candidate_customer_features as (

    select * from {{ ref('feat_customer_daily') }}

),

candidate_offer_features as (

    select * from {{ ref('feat_offer_daily') }}

),

candidate_redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

candidate_pairs as (

    select
        {{ customer_days }}.as_of_date,
        {{ customer_days }}.customer_id,
        candidate_offers.offer_id
    from {{ customer_days }}
    inner join candidate_customers
        on {{ customer_days }}.customer_id = candidate_customers.customer_id
    inner join candidate_offers
        on
            {{ customer_days }}.as_of_date between candidate_offers.starts_on and candidate_offers.ends_on
            and (
                candidate_offers.target_business_type is null
                or candidate_offers.target_business_type = candidate_customers.business_type
            )

),

{{ customer_offer_features('candidate_pairs') }},

-- scalar bounds (pair_date_bounds, from the interaction features), so the planner reads the
-- days' rows through the feature tables' indexes
candidate_customer_features_in_bounds as (

    select *
    from candidate_customer_features
    where
        as_of_date >= (select pair_date_bounds.first_as_of_date from pair_date_bounds)
        and as_of_date <= (select pair_date_bounds.last_as_of_date from pair_date_bounds)

),

candidate_offer_features_in_bounds as (

    select *
    from candidate_offer_features
    where
        as_of_date >= (select pair_date_bounds.first_as_of_date from pair_date_bounds)
        and as_of_date <= (select pair_date_bounds.last_as_of_date from pair_date_bounds)

),

-- the pairs whose offer the customer redeemed on a UTC day before the pair's as-of date
pairs_redeemed_before as (

    select distinct
        candidate_pairs.as_of_date,
        candidate_pairs.customer_id,
        candidate_pairs.offer_id
    from candidate_pairs
    inner join candidate_redemptions
        on
            candidate_pairs.customer_id = candidate_redemptions.customer_id
            and candidate_pairs.offer_id = candidate_redemptions.offer_id
            and candidate_redemptions.redeemed_date < candidate_pairs.as_of_date

),

candidates as (

    select
        candidate_pairs.as_of_date,
        candidate_pairs.customer_id,
        candidate_pairs.offer_id
        {{- feature_columns('feat_customer_daily', 'candidate_customer_features_in_bounds') }}
        {{- feature_columns('feat_offer_daily', 'candidate_offer_features_in_bounds') }}
        {{- feature_columns('feat_customer_offer_daily', 'customer_offer_features') }},
        pairs_redeemed_before.offer_id is not null as has_redeemed_offer
    from candidate_pairs
    left join candidate_customer_features_in_bounds
        on
            candidate_pairs.as_of_date = candidate_customer_features_in_bounds.as_of_date
            and candidate_pairs.customer_id = candidate_customer_features_in_bounds.customer_id
    left join candidate_offer_features_in_bounds
        on
            candidate_pairs.as_of_date = candidate_offer_features_in_bounds.as_of_date
            and candidate_pairs.offer_id = candidate_offer_features_in_bounds.offer_id
    left join customer_offer_features
        on
            candidate_pairs.as_of_date = customer_offer_features.as_of_date
            and candidate_pairs.customer_id = customer_offer_features.customer_id
            and candidate_pairs.offer_id = customer_offer_features.offer_id
    left join pairs_redeemed_before
        on
            candidate_pairs.as_of_date = pairs_redeemed_before.as_of_date
            and candidate_pairs.customer_id = pairs_redeemed_before.customer_id
            and candidate_pairs.offer_id = pairs_redeemed_before.offer_id

)
{%- endmacro %}
