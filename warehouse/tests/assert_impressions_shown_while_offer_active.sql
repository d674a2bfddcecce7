-- Impressions are shown while their offer is active; otherwise its training example has no
-- offer features. A data-quality warning on the raw data, not a model error.
{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'stg_raw__impressions'}}}) }}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

offers as (

    select * from {{ ref('stg_raw__offers') }}

)

select impressions.impression_id
from impressions
inner join offers
    on impressions.offer_id = offers.offer_id
where impressions.shown_date not between offers.starts_on and offers.ends_on
