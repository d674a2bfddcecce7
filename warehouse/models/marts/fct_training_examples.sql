-- One row per impression whose label is known on the run date, with its label and every
-- model feature as of the day it was shown (data from before that day's 00:00 UTC only).
-- The feature columns are the same, in the same order, as in fct_scoring_candidates.

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

training_examples as (

    select
        impressions_labelled.impression_id,
        impressions_labelled.customer_id,
        impressions_labelled.offer_id,
        impressions_labelled.shown_at,
        impressions_labelled.shown_date,
        impressions_labelled.label,

        ---------- customer features
        customer_features.recency_days,
        customer_features.frequency,
        customer_features.monetary,
        customer_features.promo_affinity,
        customer_features.avg_basket_size,
        customer_features.avg_basket_quantity,
        customer_features.tier2_purchase_ratio,
        customer_features.tier3_purchase_ratio,
        customer_features.fresh_category_ratio,
        customer_features.business_order_ratio,
        customer_features.category_entropy,

        ---------- offer features
        offer_features.discount_depth,
        offer_features.margin_impact,
        offer_features.days_until_expiry,
        offer_features.historical_redemption_rate,
        offer_features.is_own_brand,

        ---------- customer × offer features
        customer_offer_features.bought_product_before,
        customer_offer_features.days_since_last_cat_purchase,
        customer_offer_features.category_affinity_score,
        customer_offer_features.discount_depth_vs_usual,
        customer_offer_features.price_sensitivity_match,
        customer_offer_features.business_type_match

    from impressions_labelled
    left join customer_features
        on
            impressions_labelled.shown_date = customer_features.as_of_date
            and impressions_labelled.customer_id = customer_features.customer_id
    left join offer_features
        on
            impressions_labelled.shown_date = offer_features.as_of_date
            and impressions_labelled.offer_id = offer_features.offer_id
    left join customer_offer_features
        on
            impressions_labelled.shown_date = customer_offer_features.as_of_date
            and impressions_labelled.customer_id = customer_offer_features.customer_id
            and impressions_labelled.offer_id = customer_offer_features.offer_id

)

select * from training_examples
