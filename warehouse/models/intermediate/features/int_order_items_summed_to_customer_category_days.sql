-- Spend per customer, category and order day: the input of category entropy and category
-- affinity.

with

order_items as (

    select * from {{ ref('int_order_items_joined') }}

),

customer_category_days as (

    select
        customer_id,
        category,
        ordered_date,
        sum(paid_amount) as spend_amount
    from order_items
    group by
        customer_id,
        category,
        ordered_date

)

select * from customer_category_days
