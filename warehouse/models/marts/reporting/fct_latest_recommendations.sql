-- The latest day's recommendations, one row per (customer_id, rank), with the offer's details,
-- the customer's experiment variant, the model that ranked it and its top 3 reasons: as columns
-- (reason_<n>_*) for BI filters, and as one readable line (`reasons`) for a table view.

with

recommendations as (

    select * from {{ ref('stg_ml__recommendations') }}

),

explanations as (

    select * from {{ ref('stg_ml__recommendation_explanations') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

models as (

    select * from {{ ref('stg_ml__registered_models') }}

),

latest_score_date as (

    select max(score_date) as score_date
    from recommendations

),

latest_recommendations as (

    select recommendations.*
    from recommendations
    inner join latest_score_date
        on recommendations.score_date = latest_score_date.score_date

),

-- `feature=value (+contribution)`, numbers rounded to 2 decimals with trailing zeros dropped.
explanations_worded as (

    select
        explanations.*,
        explanations.feature || '='
        || case
            when explanations.feature_value ~ '^-?[0-9]+(\.[0-9]+)?$'
                then trim_scale(round(explanations.feature_value::numeric, 2))::text
            else coalesce(explanations.feature_value, 'null')
        end
        || ' ('
        || case when explanations.contribution >= 0 then '+' else '' end
        || trim_scale(round(explanations.contribution::numeric, 2))::text
        || ')' as reason
    from explanations
    inner join latest_recommendations
        on
            explanations.score_date = latest_recommendations.score_date
            and explanations.customer_id = latest_recommendations.customer_id
            and explanations.offer_id = latest_recommendations.offer_id

),

reasons_pivoted as (

    select
        score_date,
        customer_id,
        offer_id,
        max(feature) filter (where contribution_rank = 1) as reason_1_feature,
        max(contribution) filter (where contribution_rank = 1) as reason_1_contribution,
        max(feature_value) filter (where contribution_rank = 1) as reason_1_value,
        max(feature) filter (where contribution_rank = 2) as reason_2_feature,
        max(contribution) filter (where contribution_rank = 2) as reason_2_contribution,
        max(feature_value) filter (where contribution_rank = 2) as reason_2_value,
        max(feature) filter (where contribution_rank = 3) as reason_3_feature,
        max(contribution) filter (where contribution_rank = 3) as reason_3_contribution,
        max(feature_value) filter (where contribution_rank = 3) as reason_3_value,
        string_agg(reason, '; ' order by contribution_rank) as reasons
    from explanations_worded
    group by score_date, customer_id, offer_id

),

recommendations_explained as (

    select
        latest_recommendations.score_date,
        latest_recommendations.customer_id,
        latest_recommendations.rank,
        latest_recommendations.offer_id,
        offers.product_id,
        offers.offer_scope,
        offers.category as offer_category,
        offers.is_own_brand,
        offers.discount_depth::double precision as discount_depth,
        offers.starts_on as offer_starts_on,
        offers.ends_on as offer_ends_on,
        latest_recommendations.score,
        latest_recommendations.score_rank,
        latest_recommendations.variant,
        latest_recommendations.ranked_by,
        latest_recommendations.model_id,
        models.algorithm,
        reasons_pivoted.reasons,
        reasons_pivoted.reason_1_feature,
        reasons_pivoted.reason_1_contribution,
        reasons_pivoted.reason_1_value,
        reasons_pivoted.reason_2_feature,
        reasons_pivoted.reason_2_contribution,
        reasons_pivoted.reason_2_value,
        reasons_pivoted.reason_3_feature,
        reasons_pivoted.reason_3_contribution,
        reasons_pivoted.reason_3_value
    from latest_recommendations
    left join offers
        on latest_recommendations.offer_id = offers.offer_id
    left join models
        on latest_recommendations.model_id = models.model_id
    left join reasons_pivoted
        on
            latest_recommendations.score_date = reasons_pivoted.score_date
            and latest_recommendations.customer_id = reasons_pivoted.customer_id
            and latest_recommendations.offer_id = reasons_pivoted.offer_id

)

select * from recommendations_explained
