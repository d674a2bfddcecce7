-- The run's as-of date, one row: features and scoring candidates are built as of this day,
-- and training examples are the impressions whose label was known by then.
--
-- Analysed as soon as it is built: autovacuum never analyses a table of fewer than 50 rows, and
-- without statistics the planner takes this one row for about 2,000 (one page's worth). Every
-- join to it then looks 2,000 times larger: at 100k customers the training examples' check
-- against the labels read all 3.8M examples by their impression index, 6.5 s for one day's 35k
-- (12 s in a daily build), and 64.7 s in a full build instead of 3.0 (docs/performance.md, "the
-- run date's statistics").

{{ config(post_hook='analyze {{ this }}') }}

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
