-- The registry without its model text (scoring's business, not reporting's).

with

source as (

    select * from {{ source('ml', 'model_registry') }}

),

renamed as (

    select

        ---------- ids
        model_id::text as model_id,

        ---------- strings
        algorithm::text as algorithm,
        status::text as status,

        ---------- dates
        trained_for_date::date as trained_for_date,

        ---------- timestamps
        created_at::timestamptz as created_at

    from source

)

select * from renamed
