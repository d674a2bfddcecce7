-- The raw interaction events the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
with

interaction_events as (

    select * from {{ ref('base_raw__interaction_events') }}

),

quarantined_rows as (

    select * from {{ ref('stg_raw__quarantined_rows') }}
    where source_table = 'interaction_events'

),

kept as (

    select
        interaction_events.event_id,
        interaction_events.impression_id,
        interaction_events.event_type,
        interaction_events.event_at,
        interaction_events.event_date
    from interaction_events
    where
        not exists (
            select quarantined_rows.row_key
            from quarantined_rows
            where
                (quarantined_rows.row_key ->> 'event_id')::bigint = interaction_events.event_id
        )

)

select * from kept
