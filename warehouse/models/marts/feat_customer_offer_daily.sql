-- Customer × offer interaction features as of day D, only for the (D, customer, offer) triples
-- that need them: each labelled impression as of the day it was shown, and each scoring pair
-- as of the run date. Only data from before D 00:00 UTC is used.

with

feature_pairs as (

    select * from {{ ref('int_feature_pairs_unioned') }}

),

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

customer_features as (

    select * from {{ ref('feat_customer_daily') }}

),

customer_categories as (

    select * from {{ ref('int_customer_categories_windowed') }}

),

order_items as (

    select * from {{ ref('int_order_items_joined') }}

),

first_product_purchases as (

    select
        customer_id,
        product_id,
        min(ordered_date) as first_ordered_date
    from order_items
    group by
        customer_id,
        product_id

),

customer_offer_features as (

    select
        feature_pairs.as_of_date,
        feature_pairs.customer_id,
        feature_pairs.offer_id,
        case
            when first_product_purchases.first_ordered_date < feature_pairs.as_of_date then 1
            else 0
        end as bought_product_before,
        (
            feature_pairs.as_of_date - customer_categories.last_category_ordered_date
        )::integer as days_since_last_cat_purchase,
        case
            when customer_features.monetary > 0 and offers.category is null then 1
            when customer_features.monetary > 0
                then
                    coalesce(customer_categories.category_spend_amount, 0)
                    / customer_features.monetary::numeric
        end::double precision as category_affinity_score,
        (
            offers.discount_depth - customer_features.usual_discount_depth
        )::double precision as discount_depth_vs_usual,
        (
            customer_features.promo_affinity * offers.discount_depth
        )::double precision as price_sensitivity_match,
        case
            when offers.target_business_type is null then 0.5
            when offers.target_business_type = customers.business_type then 1
            else 0
        end::double precision as business_type_match
    from feature_pairs
    inner join offers
        on feature_pairs.offer_id = offers.offer_id
    inner join customers
        on feature_pairs.customer_id = customers.customer_id
    left join customer_features
        on
            feature_pairs.as_of_date = customer_features.as_of_date
            and feature_pairs.customer_id = customer_features.customer_id
    left join customer_categories
        on
            feature_pairs.as_of_date = customer_categories.as_of_date
            and feature_pairs.customer_id = customer_categories.customer_id
            and offers.category = customer_categories.category
    left join first_product_purchases
        on
            feature_pairs.customer_id = first_product_purchases.customer_id
            and offers.product_id = first_product_purchases.product_id

)

select * from customer_offer_features
