with

source as (

    select * from {{ source('ml', 'recommendation_explanations') }}

),

renamed as (

    select

        ---------- ids
        customer_id::bigint as customer_id,
        offer_id::bigint as offer_id,
        model_id::text as model_id,

        ---------- strings
        feature::text as feature,
        feature_value::text as feature_value,

        ---------- numerics
        contribution::double precision as contribution,
        contribution_rank::integer as contribution_rank,

        ---------- dates
        score_date::date as score_date

    from source

)

select * from renamed
