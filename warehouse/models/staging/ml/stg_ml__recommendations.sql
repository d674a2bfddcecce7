with

source as (

    select * from {{ source('ml', 'recommendations') }}

),

renamed as (

    select

        ---------- ids
        customer_id::bigint as customer_id,
        offer_id::bigint as offer_id,
        model_id::text as model_id,

        ---------- strings
        ranked_by::text as ranked_by,
        variant::text as variant,

        ---------- numerics
        rank::integer as rank,
        score_rank::integer as score_rank,
        score::double precision as score,

        ---------- dates
        score_date::date as score_date

    from source

)

select * from renamed
