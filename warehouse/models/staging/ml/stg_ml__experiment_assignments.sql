with

source as (

    select * from {{ source('ml', 'experiment_assignments') }}

),

renamed as (

    select

        ---------- ids
        experiment_id::text as experiment_id,
        customer_id::bigint as customer_id,

        ---------- strings
        variant::text as variant,

        ---------- timestamps
        assigned_at::timestamptz as assigned_at

    from source

)

select * from renamed
