-- Order lines with their order's customer and date and their product's attributes, and the
-- line's gross margin (what was paid over the product's cost) for the experiment results.

with

order_items as (

    select * from {{ ref('stg_raw__order_items') }}

),

orders as (

    select * from {{ ref('stg_raw__orders') }}

),

products as (

    select * from {{ ref('stg_raw__products') }}

),

order_items_joined as (

    select
        order_items.order_id,
        order_items.line_number,
        orders.customer_id,
        order_items.product_id,
        products.category,
        products.price_tier,
        products.is_own_brand,
        products.is_fresh,
        order_items.is_promo,
        orders.ordered_at,
        orders.ordered_date,
        extract(isodow from orders.ordered_date) <= 5 as is_weekday_order,
        order_items.quantity,
        order_items.paid_unit_price,
        products.list_unit_price,
        products.unit_cost,
        order_items.quantity * order_items.paid_unit_price as paid_amount,
        order_items.quantity * products.list_unit_price as list_amount,
        order_items.quantity * (order_items.paid_unit_price - products.unit_cost) as gross_margin_amount
    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    inner join products
        on order_items.product_id = products.product_id

)

select * from order_items_joined
