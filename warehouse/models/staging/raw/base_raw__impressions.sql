-- Every row of raw impressions, renamed and cast: the rows stg_raw__quarantined_rows checks, and
-- stg_raw__impressions keeps those it does not quarantine.
select

    ---------- ids
    impression_id::bigint as impression_id,
    customer_id::bigint as customer_id,
    offer_id::bigint as offer_id,

    ---------- numerics
    -- probability that the logging policy showed this offer in this visit (off-policy evaluation)
    propensity::double precision as propensity,

    ---------- timestamps
    shown_at::timestamptz as shown_at,

    ---------- dates (UTC, whatever the session time zone)
    (shown_at at time zone 'UTC')::date as shown_date

from {{ source('raw', 'impressions') }}
