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
where
    not exists (
        select
        from {{ ref('stg_raw__quarantined_rows') }} as quarantined_rows
        where
            quarantined_rows.source_table = 'order_items'
            and (quarantined_rows.row_key ->> 'order_id')::bigint = order_items.order_id
            and (quarantined_rows.row_key ->> 'line_number')::integer = order_items.line_number
    )
