-- One row per day that features are built as of: from the first impression date to the run's
-- as-of date (inclusive). The run date is always included, even when it precedes the first
-- impression. This is the only model that calls as_of_date(); every other model reads the
-- dates here, which keeps their date logic unit-testable with mocked rows.
--
-- A table, not a view: the run date is fixed once per build, so every model of the run sees
-- the same date even if impressions land meanwhile, and the impressions are scanned once.
-- Analysed as soon as it is built, like dim_run_date: the models built next join it, before
-- autovacuum's first look (a minute or more later), and would plan for about 2,000 dates.

{{ config(materialized='table', post_hook='analyze {{ this }}') }}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

run_dates as (

    select {{ as_of_date() }} as run_as_of_date

),

first_impressions as (

    select min(shown_date) as first_shown_date
    from impressions

),

date_bounds as (

    select
        run_dates.run_as_of_date,
        -- least() ignores nulls: with no impressions the spine is the run date alone
        least(first_impressions.first_shown_date, run_dates.run_as_of_date) as first_as_of_date
    from run_dates
    cross join first_impressions

),

as_of_dates as (

    select
        date_bounds.first_as_of_date + day_offsets.day_offset as as_of_date,
        day_offsets.day_offset
        = date_bounds.run_as_of_date - date_bounds.first_as_of_date as is_run_date
    from date_bounds
    cross join lateral generate_series(
        0, date_bounds.run_as_of_date - date_bounds.first_as_of_date
    ) as day_offsets (day_offset)

)

select * from as_of_dates
