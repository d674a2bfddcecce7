-- The raw redemptions the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
with

redemptions as (

    select * from {{ ref('base_raw__redemptions') }}

),

quarantined_rows as (

    select * from {{ ref('stg_raw__quarantined_rows') }}
    where source_table = 'redemptions'

),

kept as (

    select
        redemptions.redemption_id,
        redemptions.customer_id,
        redemptions.offer_id,
        redemptions.redeemed_at,
        redemptions.redeemed_date
    from redemptions
    where
        not exists (
            select quarantined_rows.row_key
            from quarantined_rows
            where
                (quarantined_rows.row_key ->> 'redemption_id')::bigint = redemptions.redemption_id
        )

)

select * from kept
