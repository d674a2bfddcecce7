-- The raw orders the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
with

orders as (

    select * from {{ ref('base_raw__orders') }}

),

quarantined_rows as (

    select * from {{ ref('stg_raw__quarantined_rows') }}
    where source_table = 'orders'

),

kept as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.ordered_date
    from orders
    where
        not exists (
            select quarantined_rows.row_key
            from quarantined_rows
            where
                (quarantined_rows.row_key ->> 'order_id')::bigint = orders.order_id
        )

)

select * from kept
