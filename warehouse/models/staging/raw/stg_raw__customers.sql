select

    ---------- ids
    customer_id::bigint as customer_id,

    ---------- strings
    business_type::text as business_type,
    region::text as region,

    ---------- dates
    signup_date::date as signup_date

from {{ source('raw', 'customers') }}
