select

    ---------- ids
    product_id::bigint as product_id,

    ---------- strings
    department::text as department,
    category::text as category,

    ---------- numerics
    price_tier::integer as price_tier,
    unit_price::numeric(12, 2) as list_unit_price,
    unit_cost::numeric(12, 2) as unit_cost,

    ---------- booleans
    is_own_brand::boolean as is_own_brand,
    is_fresh::boolean as is_fresh

from {{ source('raw', 'products') }}
