-- The raw impressions the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
with

impressions as (

    select * from {{ ref('base_raw__impressions') }}

),

quarantined_rows as (

    select * from {{ ref('stg_raw__quarantined_rows') }}
    where source_table = 'impressions'

),

kept as (

    select
        impressions.impression_id,
        impressions.customer_id,
        impressions.offer_id,
        impressions.propensity,
        impressions.shown_at,
        impressions.shown_date
    from impressions
    where
        not exists (
            select quarantined_rows.row_key
            from quarantined_rows
            where
                (quarantined_rows.row_key ->> 'impression_id')::bigint = impressions.impression_id
        )

)

select * from kept
