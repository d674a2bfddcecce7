-- The raw redemptions the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    redemptions.redemption_id,
    redemptions.customer_id,
    redemptions.offer_id,
    redemptions.redeemed_at,
    redemptions.redeemed_date
from {{ ref('base_raw__redemptions') }} as redemptions
where {{ raw_row_not_quarantined('redemptions', {'redemption_id': 'bigint'}) }}
