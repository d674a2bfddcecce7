with

source as (

    select * from {{ source('ml', 'shadow_agreement') }}

),

renamed as (

    select

        ---------- ids
        model_id::text as model_id,

        ---------- strings
        variant::text as variant,

        ---------- numerics
        k::integer as k,
        customers::bigint as customers,
        overlap_at_k::double precision as overlap_at_k,

        ---------- dates
        score_date::date as score_date

    from source

)

select * from renamed
