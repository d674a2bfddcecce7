with

source as (

    select * from {{ source('raw', 'offers') }}

),

renamed as (

    select

        ---------- ids
        offer_id::bigint as offer_id,
        product_id::bigint as product_id,

        ---------- strings
        category::text as category,
        target_business_type::text as target_business_type,

        ---------- numerics
        (discount_pct / 100)::numeric(7, 6) as discount_depth,
        margin_impact::numeric(6, 4) as margin_impact,

        ---------- dates
        starts_on::date as starts_on,
        ends_on::date as ends_on

    from source

)

select * from renamed
