-- The raw orders the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    orders.order_id,
    orders.customer_id,
    orders.ordered_at,
    orders.ordered_date
from {{ ref('base_raw__orders') }} as orders
where {{ raw_row_not_quarantined('orders', {'order_id': 'bigint'}) }}
