-- Every labelled impression (int_impressions_labelled: right-censored ones are left out) with the
-- propensity its policy logged: below 1 for a stochastic logging policy's choice, 1 for a
-- deterministic policy's (offerrank's served lists in the closed loop). The off-policy estimate
-- reads the first kind (int_impressions_logged_in_window) and compares with the second
-- (fct_served_impressions).
--
-- Built only by the `off_policy` selector (selectors.yml).

{{ config(tags=['off_policy']) }}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

impressions_labelled as (

    select * from {{ ref('int_impressions_labelled') }}

),

labelled_with_propensities as (

    select
        impressions_labelled.impression_id,
        impressions_labelled.customer_id,
        impressions_labelled.offer_id,
        impressions_labelled.shown_date,
        impressions.propensity,
        impressions_labelled.label
    from impressions_labelled
    inner join impressions
        on impressions_labelled.impression_id = impressions.impression_id

)

select * from labelled_with_propensities
