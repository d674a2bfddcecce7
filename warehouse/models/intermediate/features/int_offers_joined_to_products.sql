-- Offers with their scope and the category and brand they apply to.

with

offers as (

    select * from {{ ref('stg_raw__offers') }}

),

products as (

    select * from {{ ref('stg_raw__products') }}

),

offers_joined_to_products as (

    select
        offers.offer_id,
        offers.product_id,
        case
            when offers.product_id is not null then 'product'
            when offers.category is not null then 'category'
            else 'store'
        end as offer_scope,
        coalesce(products.category, offers.category) as category,
        coalesce(products.is_own_brand, false) as is_own_brand,
        offers.discount_type,
        offers.discount_depth,
        offers.reward_amount,
        offers.margin_impact,
        offers.starts_on,
        offers.ends_on,
        offers.target_business_type
    from offers
    left join products
        on offers.product_id = products.product_id

)

select * from offers_joined_to_products
