-- Each experiment's results, one row per (experiment_id, variant): exposed customers, their
-- impressions, the redemption rate per impression, the share of customers who redeemed and the
-- margin per customer, each with a 95 % confidence interval, and for every variant but control
-- its relative lift over control and the conversion test against it (docs/experiments.md,
-- "Reading the results").
--
-- Customers, not impressions, were randomized, and one customer's impressions are correlated
-- (the same tastes, the same offers seen again): every variance is taken over customers. The
-- redemption rate is a ratio of per-customer sums, sum(redemptions) / sum(labelled impressions),
-- so its variance is the delta method's (Deng et al. 2018, "Applying the Delta Method in Metric
-- Analytics"), over the customers with labelled impressions:
--     var(R) = (var(Y) - 2 R cov(Y, N) + R^2 var(N)) / (n mean(N)^2)
-- Lifts are ratios of two independent variants' estimates: the delta method on the log ratio,
--     var(log(T / C)) = se(T)^2 / T^2 + se(C)^2 / C^2,
-- exponentiated back, so the interval is asymmetric and never below -100 %.

{% set z = var('ci_normal_quantile') %}
{#- the figures with a relative lift over control: each has a standard error, <figure>_se -#}
{% set lifted_figures = ['redemption_rate', 'margin_per_customer'] %}

with

customers as (

    select * from {{ ref('int_experiment_outcomes_summed_to_customers') }}

),

variants_summed as (

    select
        experiment_id,
        variant,
        min(assigned_at) as first_assigned_at,
        max(assigned_at) as last_assigned_at,
        count(*) as customers,
        count(*) filter (where impressions > 0) as customers_with_impressions,
        sum(impressions)::bigint as impressions,
        sum(impressions_censored)::bigint as impressions_censored,
        sum(impressions_labelled)::bigint as impressions_labelled,
        sum(redemptions)::bigint as redemptions,
        count(*) filter (where has_converted) as converted_customers,
        sum(gross_margin)::double precision as gross_margin,
        sum(offer_cost)::double precision as offer_cost,
        avg(margin::double precision) as margin_per_customer,
        stddev_samp(margin::double precision) / sqrt(count(*)) as margin_per_customer_se,
        -- The delta method's moments, over the customers with labelled impressions (the others
        -- add nothing to either sum).
        count(*) filter (where impressions_labelled > 0) as customers_labelled,
        avg(impressions_labelled::double precision) filter (where impressions_labelled > 0) as labelled_mean,
        var_samp(impressions_labelled::double precision) filter (where impressions_labelled > 0) as labelled_var,
        var_samp(redemptions::double precision) filter (where impressions_labelled > 0) as redemptions_var,
        covar_samp(redemptions::double precision, impressions_labelled::double precision) filter (
            where impressions_labelled > 0
        ) as redemptions_labelled_covar
    from customers
    group by experiment_id, variant

),

rates as (

    select
        *,
        redemptions::double precision / nullif(impressions_labelled, 0) as redemption_rate,
        converted_customers::double precision / customers as conversion_rate
    from variants_summed

),

standard_errors as (

    select
        *,
        -- Rounding can take the exact zero of a variant with one rate for everyone below zero.
        sqrt(greatest(
            redemptions_var
            - 2 * redemption_rate * redemptions_labelled_covar
            + redemption_rate ^ 2 * labelled_var,
            0
        ) / (customers_labelled * labelled_mean ^ 2)) as redemption_rate_se,
        -- Wilson's score interval: unlike the normal one, it stays inside [0, 1] for rates near 0.
        (conversion_rate + {{ z }} ^ 2 / (2 * customers)) / (1 + {{ z }} ^ 2 / customers) as wilson_center,
        {{ z }} * sqrt(conversion_rate * (1 - conversion_rate) / customers + {{ z }} ^ 2 / (4 * customers ^ 2))
        / (1 + {{ z }} ^ 2 / customers) as wilson_half_width
    from rates

),

controls as (

    select * from standard_errors
    where variant = 'control'

),

-- Each variant beside its experiment's control: the log ratios of the rate and the margin (where
-- both are positive), and the terms of the two-proportion z-test of conversion.
compared_to_control as (

    select
        standard_errors.*,
        {%- for figure in lifted_figures %}
        case
            when standard_errors.{{ figure }} > 0 and controls.{{ figure }} > 0
                then ln(standard_errors.{{ figure }} / controls.{{ figure }})
        end as {{ figure }}_log_ratio,
        sqrt(
            (standard_errors.{{ figure }}_se / nullif(standard_errors.{{ figure }}, 0)) ^ 2
            + (controls.{{ figure }}_se / nullif(controls.{{ figure }}, 0)) ^ 2
        ) as {{ figure }}_log_ratio_se,
        {%- endfor %}
        (standard_errors.converted_customers + controls.converted_customers)::double precision
        / (standard_errors.customers + controls.customers) as pooled_conversion_rate,
        1.0 / standard_errors.customers + 1.0 / controls.customers as inverse_customers_sum,
        standard_errors.conversion_rate - controls.conversion_rate as conversion_rate_difference
    from standard_errors
    left join controls
        on
            standard_errors.experiment_id = controls.experiment_id
            and standard_errors.variant != 'control'

),

-- The pooled two-proportion z statistic; null when the pooled rate is 0 or 1 (no variance).
conversion_tested as (

    select
        *,
        conversion_rate_difference / nullif(
            sqrt(pooled_conversion_rate * (1 - pooled_conversion_rate) * inverse_customers_sum), 0
        ) as conversion_z
    from compared_to_control

),

results as (

    select
        experiment_id,
        variant,
        first_assigned_at,
        last_assigned_at,
        customers,
        customers_with_impressions,
        impressions,
        impressions_censored,
        impressions_labelled,
        redemptions,
        redemption_rate,
        redemption_rate - {{ z }} * redemption_rate_se as redemption_rate_ci_lower,
        redemption_rate + {{ z }} * redemption_rate_se as redemption_rate_ci_upper,
        converted_customers,
        conversion_rate,
        wilson_center - wilson_half_width as conversion_rate_ci_lower,
        wilson_center + wilson_half_width as conversion_rate_ci_upper,
        gross_margin,
        offer_cost,
        margin_per_customer,
        margin_per_customer - {{ z }} * margin_per_customer_se as margin_per_customer_ci_lower,
        margin_per_customer + {{ z }} * margin_per_customer_se as margin_per_customer_ci_upper,
        {%- for figure in lifted_figures %}
        exp({{ figure }}_log_ratio) - 1 as {{ figure }}_lift,
        exp({{ figure }}_log_ratio - {{ z }} * {{ figure }}_log_ratio_se) - 1 as {{ figure }}_lift_ci_lower,
        exp({{ figure }}_log_ratio + {{ z }} * {{ figure }}_log_ratio_se) - 1 as {{ figure }}_lift_ci_upper,
        {%- endfor %}
        conversion_z,
        {{ normal_two_sided_p_value('conversion_z') }} as conversion_p_value
    from conversion_tested

)

select * from results
