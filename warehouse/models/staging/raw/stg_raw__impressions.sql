-- The raw impressions the warehouse uses: those no warn-severity rule quarantined
-- (stg_raw__quarantined_rows, macros/raw_quarantine.sql).
select
    impressions.impression_id,
    impressions.customer_id,
    impressions.offer_id,
    impressions.propensity,
    impressions.shown_at,
    impressions.shown_date
from {{ ref('base_raw__impressions') }} as impressions
where {{ raw_row_not_quarantined('impressions', {'impression_id': 'bigint'}) }}
