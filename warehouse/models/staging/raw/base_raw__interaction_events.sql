-- Every row of raw interaction_events, renamed and cast: the rows stg_raw__quarantined_rows checks, and
-- stg_raw__interaction_events keeps those it does not quarantine.
select

    ---------- ids
    event_id::bigint as event_id,
    impression_id::bigint as impression_id,

    ---------- strings
    event_type::text as event_type,

    ---------- timestamps
    event_at::timestamptz as event_at,

    ---------- dates (UTC, whatever the session time zone)
    (event_at at time zone 'UTC')::date as event_date

from {{ source('raw', 'interaction_events') }}
