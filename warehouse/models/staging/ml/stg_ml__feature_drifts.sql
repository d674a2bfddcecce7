with

source as (

    select * from {{ source('ml', 'feature_drift') }}

),

renamed as (

    select

        ---------- ids
        model_id::text as model_id,

        ---------- strings
        feature::text as feature,
        kind::text as feature_kind,

        ---------- numerics
        psi::double precision as psi,
        ks::double precision as ks,
        n_reference::bigint as n_reference,
        n_current::bigint as n_current,
        reference_null_fraction::double precision as reference_null_fraction,
        current_null_fraction::double precision as current_null_fraction,

        ---------- booleans
        is_in_signal::boolean as is_in_signal,

        ---------- dates
        as_of_date::date as as_of_date,
        reference_date::date as reference_date

    from source

)

select * from renamed
