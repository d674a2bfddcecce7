-- The raw order items the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    order_items.order_id,
    order_items.line_number,
    order_items.product_id,
    order_items.quantity,
    order_items.paid_unit_price,
    order_items.is_promo
from {{ ref('base_raw__order_items') }} as order_items
where {{ raw_row_not_quarantined('order_items', {'order_id': 'bigint', 'line_number': 'integer'}) }}
