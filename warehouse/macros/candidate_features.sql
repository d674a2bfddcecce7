{#-
    The one definition of a candidate, in two parts: `candidate_pairs` says which offers a
    customer may be shown on a day, `candidate_features` gives such pairs every model feature as
    of their day. fct_scoring_candidates calls them for the run date's customers (the pairs kept
    first in int_customers_paired_with_offers), fct_logged_visit_candidates for the logged
    visits of the off-policy window, so the policy evaluated offline ranks exactly what serving
    would have ranked.
-#}

{#-
    Every offer a customer may be shown on a day, for the customer days in the CTE named
    `customer_days` (columns as_of_date, customer_id): CTEs that end in one named
    `candidate_pairs` (as_of_date, customer_id, offer_id). A candidate is an offer active that
    day (starts_on <= as_of_date <= ends_on), unless it is targeted at another business type
    than the customer's (never shown to them).
-#}
{% macro candidate_pairs(customer_days) -%}

pairing_customers as (

    select * from {{ ref('stg_raw__customers') }}

),

pairing_offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

candidate_pairs as (

    select
        {{ customer_days }}.as_of_date,
        {{ customer_days }}.customer_id,
        pairing_offers.offer_id
    from {{ customer_days }}
    inner join pairing_customers
        on {{ customer_days }}.customer_id = pairing_customers.customer_id
    inner join pairing_offers
        on
            {{ customer_days }}.as_of_date between pairing_offers.starts_on and pairing_offers.ends_on
            and (
                pairing_offers.target_business_type is null
                or pairing_offers.target_business_type = pairing_customers.business_type
            )

)
{%- endmacro %}

{#-
    Every model feature, as of its day, of each candidate pair in the CTE named `pairs` (columns
    as_of_date, customer_id, offer_id: pairs from candidate_pairs above): CTEs that end in one
    named `candidates`, one row per pair (the keys, the features, has_redeemed_offer). Features
    as of D use data from before D 00:00 UTC only; has_redeemed_offer (not a feature:
    ml/rerank.py never recommends such an offer) is true when the customer redeemed the offer
    on a UTC day before D. `one_as_of_date`: the pairs are every candidate of one day
    (customer_offer_features says what that changes).
-#}
{% macro candidate_features(pairs, one_as_of_date=false) -%}

-- first: its import of feat_customer_daily puts that mart's ref before feat_offer_daily's, and
-- ml/features.py lists a model's features in the order of its refs, as the select below does
{{ customer_offer_features(pairs, one_as_of_date, with_customer_features=true) }},

candidate_offer_features as (

    select * from {{ ref('feat_offer_daily') }}

),

candidate_redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

-- scalar bounds (pair_date_bounds, from the interaction features), so the planner reads the
-- days' rows through the feature table's index; the customers' features come with the
-- interaction features (with_customer_features)
candidate_offer_features_in_bounds as (

    select *
    from candidate_offer_features
    where
        as_of_date >= (select pair_date_bounds.first_as_of_date from pair_date_bounds)
        and as_of_date <= (select pair_date_bounds.last_as_of_date from pair_date_bounds)

),

-- each customer's first redemption of each offer: a pair was redeemed before its as-of date when
-- that day is earlier (one row per customer and offer redeemed, joined to the pairs once). Only
-- the offers active on one of the pairs' days (candidate_pairs pairs no other) and redemptions
-- before the last of those days can decide that: at 100k customers, 35k of 331k redemptions
-- for the run date, so the hash table every pair probes is a tenth as large
first_redemptions as (

    select
        customer_id,
        offer_id,
        min(redeemed_date) as first_redeemed_date
    from candidate_redemptions
    where
        redeemed_date < (select pair_date_bounds.last_as_of_date from pair_date_bounds)
        and offer_id in (
            select interaction_offers.offer_id
            from interaction_offers
            where
                interaction_offers.starts_on <= (select pair_date_bounds.last_as_of_date from pair_date_bounds)
                and interaction_offers.ends_on >= (select pair_date_bounds.first_as_of_date from pair_date_bounds)
        )
    group by customer_id, offer_id

),

-- customer_offer_features holds one row per pair already: the customer's and the offer's own
-- features are joined to it, rather than it to the pairs (a hash join of every pair against
-- every pair)
candidates as (

    select
        customer_offer_features.as_of_date,
        customer_offer_features.customer_id,
        customer_offer_features.offer_id
        {{- feature_columns('feat_customer_daily', 'customer_offer_features') }}
        {{- feature_columns('feat_offer_daily', 'candidate_offer_features_in_bounds') }}
        {{- feature_columns('feat_customer_offer_daily', 'customer_offer_features') }},
        coalesce(
            first_redemptions.first_redeemed_date < customer_offer_features.as_of_date, false
        ) as has_redeemed_offer
    from customer_offer_features
    left join candidate_offer_features_in_bounds
        on
            customer_offer_features.as_of_date = candidate_offer_features_in_bounds.as_of_date
            and customer_offer_features.offer_id = candidate_offer_features_in_bounds.offer_id
    left join first_redemptions
        on
            customer_offer_features.customer_id = first_redemptions.customer_id
            and customer_offer_features.offer_id = first_redemptions.offer_id

)
{%- endmacro %}
