-- Every row of raw orders, renamed and cast: the rows stg_raw__quarantined_rows checks, and
-- stg_raw__orders keeps those it does not quarantine.
select

    ---------- ids
    order_id::bigint as order_id,
    customer_id::bigint as customer_id,

    ---------- timestamps
    ordered_at::timestamptz as ordered_at,

    ---------- dates (UTC, whatever the session time zone)
    (ordered_at at time zone 'UTC')::date as ordered_date

from {{ source('raw', 'orders') }}
