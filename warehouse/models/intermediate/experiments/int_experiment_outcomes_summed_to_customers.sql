-- Every customer exposed to an experiment, one row per (experiment_id, customer_id), with what
-- they did from their exposure on: their impressions and those impressions' 7-day labels, the
-- gross margin of their orders and the fixed rewards of their redemptions. The customer is the
-- experiment's randomization unit, so fct_experiment_results computes every variance over these
-- rows, not over impressions.
--
-- A customer's exposure window runs from assigned_at (midnight UTC of their first score date
-- under the experiment) to their first exposure to a later experiment, if any: from then on
-- that experiment's variant served them.
--
-- An impression counts as redeemed by the project's label (int_impressions_labelled: the same
-- customer redeemed the same offer by the end of day shown_date + 7). Labels exist only for
-- impressions whose window had closed on the run date of the latest features build; the others
-- are right-censored: counted apart, never as not redeemed.
--
-- Margin: what the order lines earned over the products' cost (after discounts paid at the
-- till, so a percent offer's discount is already in it), minus the rewards of fixed offers
-- redeemed in the window, which no order line carries.

with

assignments as (

    select * from {{ ref('stg_ml__experiment_assignments') }}

),

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

labelled_impressions as (

    select * from {{ ref('int_impressions_labelled') }}

),

redemptions as (

    select * from {{ ref('stg_raw__redemptions') }}

),

order_items as (

    select * from {{ ref('int_order_items_joined') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

exposures as (

    select
        experiment_id,
        customer_id,
        variant,
        assigned_at,
        coalesce(
            lead(assigned_at) over (partition by customer_id order by assigned_at, experiment_id),
            'infinity'::timestamptz
        ) as exposure_ends_at
    from assignments

),

-- Every outcome of every customer, one row per impression, order line or redemption, with its
-- time: one join to the exposure windows then sums them all.
outcomes as (

    select
        impressions.customer_id,
        impressions.shown_at as happened_at,
        1 as impression,
        labelled_impressions.label,
        null::numeric as gross_margin_amount,
        null::numeric as reward_amount
    from impressions
    left join labelled_impressions
        on impressions.impression_id = labelled_impressions.impression_id

    union all

    select
        customer_id,
        ordered_at as happened_at,
        0 as impression,
        null as label,
        gross_margin_amount,
        null as reward_amount
    from order_items

    union all

    select
        redemptions.customer_id,
        redemptions.redeemed_at as happened_at,
        0 as impression,
        null as label,
        null as gross_margin_amount,
        case when offers.discount_type = 'fixed' then offers.reward_amount end as reward_amount
    from redemptions
    inner join offers
        on redemptions.offer_id = offers.offer_id

),

outcomes_summed as (

    select
        exposures.experiment_id,
        exposures.customer_id,
        exposures.variant,
        exposures.assigned_at,
        coalesce(sum(outcomes.impression), 0) as impressions,
        count(*) filter (where outcomes.impression = 1 and outcomes.label is null) as impressions_censored,
        count(outcomes.label) as impressions_labelled,
        coalesce(sum(outcomes.label), 0) as redemptions,
        coalesce(sum(outcomes.label), 0) > 0 as has_converted,
        coalesce(sum(outcomes.gross_margin_amount), 0) as gross_margin,
        coalesce(sum(outcomes.reward_amount), 0) as offer_cost,
        coalesce(sum(outcomes.gross_margin_amount), 0) - coalesce(sum(outcomes.reward_amount), 0) as margin
    from exposures
    left join outcomes
        on
            exposures.customer_id = outcomes.customer_id
            and exposures.assigned_at <= outcomes.happened_at
            and exposures.exposure_ends_at > outcomes.happened_at
    group by exposures.experiment_id, exposures.customer_id, exposures.variant, exposures.assigned_at

)

select * from outcomes_summed
