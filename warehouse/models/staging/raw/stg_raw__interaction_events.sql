with

source as (

    select * from {{ source('raw', 'interaction_events') }}

),

renamed as (

    select

        ---------- ids
        event_id::bigint as event_id,
        impression_id::bigint as impression_id,

        ---------- strings
        event_type::text as event_type,

        ---------- timestamps
        event_at::timestamptz as event_at

    from source

)

select * from renamed
