-- The raw orders the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    orders.order_id,
    orders.customer_id,
    orders.ordered_at,
    orders.ordered_date
from {{ ref('base_raw__orders') }} as orders
where
    not exists (
        select
        from {{ ref('stg_raw__quarantined_rows') }} as quarantined_rows
        where
            quarantined_rows.source_table = 'orders'
            and (quarantined_rows.row_key ->> 'order_id')::bigint = orders.order_id
    )
