with

source as (

    select * from {{ source('ml', 'eval_metrics') }}

),

renamed as (

    select

        ---------- ids
        model_id::text as model_id,

        ---------- strings
        split::text as split,
        segment::text as segment,
        ordering::text as ordering,
        metric::text as metric,

        ---------- numerics
        k::integer as k,
        value::double precision as metric_value,
        n_rows::bigint as n_rows,
        n_groups::bigint as n_groups,

        ---------- dates
        as_of_date::date as as_of_date,
        window_start_date::date as window_start_date,
        window_end_date::date as window_end_date

    from source

)

select * from renamed
