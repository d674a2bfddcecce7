-- Every row of raw order_items, renamed and cast: the rows stg_raw__quarantined_rows checks, and
-- stg_raw__order_items keeps those it does not quarantine.
select

    ---------- ids
    order_id::bigint as order_id,
    line_number::integer as line_number,
    product_id::bigint as product_id,

    ---------- numerics
    quantity::integer as quantity,
    unit_price::numeric(12, 2) as paid_unit_price,

    ---------- booleans
    is_promo::boolean as is_promo

from {{ source('raw', 'order_items') }}
