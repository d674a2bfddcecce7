-- The raw interaction events the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    interaction_events.event_id,
    interaction_events.impression_id,
    interaction_events.event_type,
    interaction_events.event_at,
    interaction_events.event_date
from {{ ref('base_raw__interaction_events') }} as interaction_events
where
    not exists (
        select
        from {{ ref('stg_raw__quarantined_rows') }} as quarantined_rows
        where
            quarantined_rows.source_table = 'interaction_events'
            and (quarantined_rows.row_key ->> 'event_id')::bigint = interaction_events.event_id
    )
