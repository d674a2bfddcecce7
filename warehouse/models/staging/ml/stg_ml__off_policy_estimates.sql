with

source as (

    select * from {{ source('ml', 'off_policy_estimates') }}

),

renamed as (

    select

        ---------- ids
        model_id::text as model_id,

        ---------- strings
        estimator::text as estimator,

        ---------- numerics
        value::double precision as estimate_value,
        ci_low::double precision as ci_low,
        ci_high::double precision as ci_high,
        confidence::double precision as confidence,
        bootstrap_samples::integer as bootstrap_samples,
        visits::bigint as visits,
        logged_impressions::bigint as logged_impressions,
        matched_impressions::bigint as matched_impressions,
        policy_impressions::bigint as policy_impressions,
        effective_sample_size::double precision as effective_sample_size,

        ---------- booleans
        overlaps_training::boolean as has_training_overlap,

        ---------- dates
        as_of_date::date as as_of_date,
        window_start::date as window_start_date,
        window_end::date as window_end_date,

        ---------- timestamps
        estimated_at::timestamptz as estimated_at

    from source

)

select * from renamed
