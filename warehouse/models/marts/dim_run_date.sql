-- The run's as-of date, one row: features and scoring candidates are built as of this day,
-- and training examples are the impressions whose label was known by then.

{% set label_window_days = var('label_window_days') %}

with

as_of_dates as (

    select * from {{ ref('int_as_of_dates') }}

),

run_date as (

    select
        max(as_of_date) filter (where is_run_date) as as_of_date,
        min(as_of_date) as first_feature_date,
        max(as_of_date) filter (where is_run_date)
        - {{ label_window_days + 1 }} as last_labelled_shown_date
    from as_of_dates
    having count(*) > 0

)

select * from run_date
