-- The raw redemptions the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    redemptions.redemption_id,
    redemptions.customer_id,
    redemptions.offer_id,
    redemptions.redeemed_at,
    redemptions.redeemed_date
from {{ ref('base_raw__redemptions') }} as redemptions
where
    not exists (
        select
        from {{ ref('stg_raw__quarantined_rows') }} as quarantined_rows
        where
            quarantined_rows.source_table = 'redemptions'
            and (quarantined_rows.row_key ->> 'redemption_id')::bigint = redemptions.redemption_id
    )
