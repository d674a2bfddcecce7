-- Order lines with their order's customer and date and their product's attributes, and the
-- line's gross margin (what was paid over the product's cost) for the experiment results.
-- One select, no import CTEs, so that it flattens into the queries that read it (warehouse/README.md).
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
from {{ ref('stg_raw__order_items') }} as order_items
inner join {{ ref('stg_raw__orders') }} as orders
    on order_items.order_id = orders.order_id
inner join {{ ref('stg_raw__products') }} as products
    on order_items.product_id = products.product_id
