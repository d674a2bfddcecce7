{#-
    Customer × offer interaction features for the pairs in the CTE named `pairs` (columns
    as_of_date, customer_id, offer_id), as CTEs that end in one named customer_offer_features.

    The one definition of these features: feat_customer_offer_daily computes them for
    impressions and fct_scoring_candidates for the run date's candidates, each only for the
    pairs it needs (a customer × offer × day table would be far larger than either). Every
    feature uses orders of the lookback window [D - lookback_days, D) of its as-of date D, so
    the cost follows the pairs and that window, never the whole history. A feature added here
    must be documented, and flagged `meta: {feature: true}`, in feat_customer_offer_daily's YAML.

    `one_as_of_date`: the pairs are all of the run date and pair most customers with most
    offers (fct_scoring_candidates: every customer × offer of the run date). Each customer's
    category spend and products bought in the run date's window are then read from the models
    that aggregate it once (int_customer_category_windows_of_run_date and
    int_customer_products_bought_by_run_date), joined to the pairs by customer and category or
    product. Otherwise (sparse pairs over many dates: the impressions, the logged visits) the
    pairs' own customers and categories or products are joined to the days of each pair's
    window, so that the work follows the pairs.
    Both give the same rows (tests/warehouse/test_candidate_features.py).

    `with_customer_features`: customer_offer_features also carries the customer's own features
    (feat_customer_daily's flagged columns), read in the same join as the interaction features
    use, so that the candidates do not join the customer's features a second time.
-#}
{% macro customer_offer_features(pairs, one_as_of_date=false, with_customer_features=false) -%}
{%- set lookback_days = var('lookback_days') -%}

-- read more than once (the pairs' offers, the candidates' first redemptions), so PostgreSQL
-- would materialize it; but a CTE scan cannot run in a parallel worker, and every join above one
-- runs in the leader alone. For one date's pairs it is inlined, as pair_date_bounds is: the
-- candidates' joins then all run in the parallel workers (docs/performance.md, "the candidates'
-- joins all in the workers")
interaction_offers as {{ 'not materialized ' if one_as_of_date }}(

    select * from {{ ref('int_offers_joined_to_products') }}

),

interaction_customers as (

    select * from {{ ref('stg_raw__customers') }}

),

interaction_customer_features as (

    select * from {{ ref('feat_customer_daily') }}

),

{% if one_as_of_date -%}
-- the run date's window aggregated by models of their own, which dbt builds beside
-- feat_customer_daily: what is left here are joins of tables, which run in parallel workers
customer_category_windows as (

    select * from {{ ref('int_customer_category_windows_of_run_date') }}

),

customer_products_bought as (

    select * from {{ ref('int_customer_products_bought_by_run_date') }}

),
{%- else -%}
interaction_customer_product_days as (

    select * from {{ ref('int_order_items_summed_to_customer_product_days') }}

),

interaction_customer_category_days as (

    select * from {{ ref('int_order_items_summed_to_customer_category_days') }}

),
{%- endif %}

-- inlined for one date's pairs (see interaction_offers): they are a table, whose key index gives
-- each bound in one probe; sparse pairs are a CTE, which each bound would read again
pair_date_bounds as {{ 'not materialized ' if one_as_of_date }}(

    select
        min({{ pairs }}.as_of_date) as first_as_of_date,
        max({{ pairs }}.as_of_date) as last_as_of_date,
        min({{ pairs }}.as_of_date) - {{ lookback_days }} as first_ordered_date,
        max({{ pairs }}.as_of_date) as after_last_ordered_date
    from {{ pairs }}

),

pair_offers as (

    select
        {{ pairs }}.as_of_date,
        {{ pairs }}.customer_id,
        {{ pairs }}.offer_id,
        interaction_offers.product_id,
        interaction_offers.category,
        interaction_offers.discount_depth,
        interaction_offers.target_business_type
    from {{ pairs }}
    inner join interaction_offers
        on {{ pairs }}.offer_id = interaction_offers.offer_id

),

-- scalar bounds, so the planner filters the tables and views before joining them. Materialized
-- for sparse pairs, for the reason given at product_days_in_bounds (inlined: one index probe per
-- pair); inlined for one date's pairs, from a table with statistics, so that the candidates'
-- joins can run in parallel workers (a CTE scan cannot)
customer_features_in_bounds as {{ 'not materialized' if one_as_of_date else 'materialized' }} (

    select *
    from interaction_customer_features
    where
        as_of_date >= (select pair_date_bounds.first_as_of_date from pair_date_bounds)
        and as_of_date <= (select pair_date_bounds.last_as_of_date from pair_date_bounds)

),

{% if not one_as_of_date -%}
-- the pairs' customers: the window's product days are hashed against them, so that
-- product_days_in_bounds holds their purchases alone
pair_customers as (

    select distinct {{ pairs }}.customer_id
    from {{ pairs }}

),

-- only the offers' own products: other purchases count through their category alone, read
-- from the category days (fewer rows than the product days). The pairs' offer ids are
-- de-duplicated first: as a bare `in`, the planner scanned the pairs once per offer (13 s of
-- the run date's candidates at 100k customers).
pair_products as (

    select distinct interaction_offers.product_id
    from interaction_offers
    where
        interaction_offers.product_id is not null
        and interaction_offers.offer_id in (select distinct {{ pairs }}.offer_id from {{ pairs }})

),

-- materialized: read in one scan of the window's days and hashed against the pairs; inlined,
-- the planner takes the pairs for a few hundred rows (a CTE has no statistics) and probes the
-- product days' index once per pair
product_days_in_bounds as materialized (

    select interaction_customer_product_days.*
    from interaction_customer_product_days
    inner join pair_customers
        on
            interaction_customer_product_days.customer_id = pair_customers.customer_id
            and interaction_customer_product_days.ordered_date
            >= (select pair_date_bounds.first_ordered_date from pair_date_bounds)
            and interaction_customer_product_days.ordered_date
            < (select pair_date_bounds.after_last_ordered_date from pair_date_bounds)
    inner join pair_products
        on interaction_customer_product_days.product_id = pair_products.product_id

),

-- the window's category days of the pairs' customers alone, by a semi-join hashed against them.
-- Without it, a daily run's one date of impressions (13k of 100k customers) sorted the window's
-- 3.5M category days of every customer to disk for the join below: 5.4-6.5 s for the model's
-- select, against 3.5-3.6 s. Materialized, so that the semi-join runs on the scan: inlined, the
-- planner may move it above that join, as a nested loop over the pairs' customers (a CTE it takes
-- for 200 rows), which once cost 380M comparisons, 60 s of a 2,000-customer full build.
-- tests/warehouse/test_candidate_features.py pins the hash join.
category_days_in_bounds as materialized (

    select interaction_customer_category_days.*
    from interaction_customer_category_days
    where
        interaction_customer_category_days.ordered_date
        >= (select pair_date_bounds.first_ordered_date from pair_date_bounds)
        and interaction_customer_category_days.ordered_date
        < (select pair_date_bounds.after_last_ordered_date from pair_date_bounds)
        and interaction_customer_category_days.customer_id in (
            select pair_customers.customer_id from pair_customers
        )

),

needed_customer_categories as (

    select distinct
        as_of_date,
        customer_id,
        category
    from pair_offers
    where category is not null

),

customer_category_windows as (

    select
        needed_customer_categories.as_of_date,
        needed_customer_categories.customer_id,
        needed_customer_categories.category,
        sum(category_days_in_bounds.spend_amount) as category_spend_amount,
        max(category_days_in_bounds.ordered_date) as last_category_ordered_date
    from needed_customer_categories
    inner join category_days_in_bounds
        on
            needed_customer_categories.customer_id = category_days_in_bounds.customer_id
            and needed_customer_categories.category = category_days_in_bounds.category
            and needed_customer_categories.as_of_date - {{ lookback_days }}
            <= category_days_in_bounds.ordered_date
            and needed_customer_categories.as_of_date > category_days_in_bounds.ordered_date
    group by
        needed_customer_categories.as_of_date,
        needed_customer_categories.customer_id,
        needed_customer_categories.category

),

customer_products_bought as (

    select distinct
        pair_offers.as_of_date,
        pair_offers.customer_id,
        pair_offers.product_id
    from pair_offers
    inner join product_days_in_bounds
        on
            pair_offers.customer_id = product_days_in_bounds.customer_id
            and pair_offers.product_id = product_days_in_bounds.product_id
            and product_days_in_bounds.ordered_date >= pair_offers.as_of_date - {{ lookback_days }}
            and product_days_in_bounds.ordered_date < pair_offers.as_of_date

),

{%- endif %}

customer_offer_features as (

    select
        pair_offers.as_of_date,
        pair_offers.customer_id,
        pair_offers.offer_id,
        case
            when customer_products_bought.product_id is null then 0 else 1
        end as bought_product_before,
        (
            pair_offers.as_of_date - customer_category_windows.last_category_ordered_date
        )::integer as days_since_last_cat_purchase,
        -- divided in double precision, monetary's type: a numeric division (monetary cast to
        -- numeric, the quotient back) was a fifth of the run date's candidates' select
        case
            when customer_features_in_bounds.monetary > 0 and pair_offers.category is null then 1
            when customer_features_in_bounds.monetary > 0
                then
                    coalesce(customer_category_windows.category_spend_amount, 0)::double precision
                    / customer_features_in_bounds.monetary
        end::double precision as category_affinity_score,
        (
            pair_offers.discount_depth - customer_features_in_bounds.usual_discount_depth
        )::double precision as discount_depth_vs_usual,
        (
            customer_features_in_bounds.promo_affinity * pair_offers.discount_depth
        )::double precision as price_sensitivity_match,
        case
            when pair_offers.target_business_type is null then 0.5
            when pair_offers.target_business_type = interaction_customers.business_type then 1
            else 0
        end::double precision as business_type_match
        {%- if with_customer_features %}
        {{- feature_columns('feat_customer_daily', 'customer_features_in_bounds') }}
        {%- endif %}
    from pair_offers
    inner join interaction_customers
        on pair_offers.customer_id = interaction_customers.customer_id
    left join customer_features_in_bounds
        on
            pair_offers.as_of_date = customer_features_in_bounds.as_of_date
            and pair_offers.customer_id = customer_features_in_bounds.customer_id
    left join customer_category_windows
        on
            pair_offers.as_of_date = customer_category_windows.as_of_date
            and pair_offers.customer_id = customer_category_windows.customer_id
            and pair_offers.category = customer_category_windows.category
    left join customer_products_bought
        on
            pair_offers.as_of_date = customer_products_bought.as_of_date
            and pair_offers.customer_id = customer_products_bought.customer_id
            and pair_offers.product_id = customer_products_bought.product_id

)
{%- endmacro %}

