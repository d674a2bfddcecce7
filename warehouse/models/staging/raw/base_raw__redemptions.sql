-- Every row of raw redemptions, renamed and cast: the rows stg_raw__quarantined_rows checks, and
-- stg_raw__redemptions keeps those it does not quarantine.
select

    ---------- ids
    redemption_id::bigint as redemption_id,
    customer_id::bigint as customer_id,
    offer_id::bigint as offer_id,

    ---------- timestamps
    redeemed_at::timestamptz as redeemed_at,

    ---------- dates (UTC, whatever the session time zone)
    (redeemed_at at time zone 'UTC')::date as redeemed_date

from {{ source('raw', 'redemptions') }}
