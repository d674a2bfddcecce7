-- For each (as-of date D, customer, category) that a feature pair needs: the customer's spend
-- in the category over the lookback window [D - 90, D) and their last purchase day in the
-- category before D (any history).
--
-- A purchase day P lies in the window of D exactly when P + 1 <= D <= P + 90: it enters the
-- window on P + 1 and leaves it on P + 91. Window totals are running sums of these entries
-- and exits, read off at each needed as-of date: one sort over rows linear in purchases and
-- needed points, instead of joining every as-of date to every purchase in its window.

{% set lookback_days = var('lookback_days') %}

with

feature_pairs as (

    select * from {{ ref('int_feature_pairs_unioned') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

customer_category_days as (

    select * from {{ ref('int_order_items_summed_to_customer_category_days') }}

),

needed_points as (

    select distinct
        feature_pairs.as_of_date,
        feature_pairs.customer_id,
        offers.category
    from feature_pairs
    inner join offers
        on feature_pairs.offer_id = offers.offer_id
    where offers.category is not null

),

needed_customer_categories as (

    select distinct
        customer_id,
        category
    from needed_points

),

window_moves as (

    select
        customer_category_days.customer_id,
        customer_category_days.category,
        customer_category_days.ordered_date
        + window_edges.days_after_purchase as effective_date,
        window_edges.direction * customer_category_days.spend_amount as spend_change,
        case
            when window_edges.direction = 1 then customer_category_days.ordered_date
        end as ordered_date
    from customer_category_days
    -- only the customer-categories some feature pair needs
    inner join needed_customer_categories
        on
            customer_category_days.customer_id = needed_customer_categories.customer_id
            and customer_category_days.category = needed_customer_categories.category
    cross join (
        values (1, 1), ({{ lookback_days + 1 }}, -1)
    ) as window_edges (days_after_purchase, direction)

),

points_and_moves as (

    select
        customer_id,
        category,
        as_of_date as effective_date,
        true as is_needed_point,
        0 as spend_change,
        null::date as ordered_date
    from needed_points

    union all

    select
        customer_id,
        category,
        effective_date,
        false as is_needed_point,
        spend_change,
        ordered_date
    from window_moves

),

running_totals as (

    select
        customer_id,
        category,
        effective_date,
        is_needed_point,
        -- the frame includes every row of the same day, so moves effective on D count for D
        sum(spend_change) over customer_category_history as window_spend_amount,
        max(ordered_date) over customer_category_history as last_ordered_date
    from points_and_moves
    window customer_category_history as (
        partition by customer_id, category
        order by effective_date
        range between unbounded preceding and current row
    )

),

customer_categories_windowed as (

    select
        effective_date as as_of_date,
        customer_id,
        category,
        window_spend_amount as category_spend_amount,
        last_ordered_date as last_category_ordered_date
    from running_totals
    where is_needed_point

)

select * from customer_categories_windowed
