-- The raw interaction events the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    interaction_events.event_id,
    interaction_events.impression_id,
    interaction_events.event_type,
    interaction_events.event_at,
    interaction_events.event_date
from {{ ref('base_raw__interaction_events') }} as interaction_events
where {{ raw_row_not_quarantined('interaction_events', {'event_id': 'bigint'}) }}
