-- One row per labelled impression a deterministic policy served (propensity 1): in the closed
-- loop (`offerrank simulate`), the impressions of offerrank's own recommendations. The online
-- side of the off-policy estimate: ml/off_policy.py joins them to the recommendations of
-- treatment to compare its online redemption rate with the estimate from logged data.
--
-- Built only by the `off_policy` selector (selectors.yml), on demand.

{{ config(tags=['off_policy']) }}

with

labelled_impressions as (

    select * from {{ ref('int_impressions_labelled_with_propensities') }}

),

served_impressions as (

    select
        impression_id,
        customer_id,
        offer_id,
        shown_date,
        label
    from labelled_impressions
    where propensity = 1

)

select * from served_impressions
