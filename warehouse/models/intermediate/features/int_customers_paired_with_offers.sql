-- The run date's candidate pairs: every customer signed up by then × every offer they may be
-- shown that day (macros/candidate_features.sql, candidate_pairs), the rows
-- fct_scoring_candidates gives features to.
--
-- A table, analysed as soon as it is built, rather than a CTE of the candidates' query: the
-- planner has no statistics for a CTE, and took the run date's 4.9M pairs joined to their
-- offers for 400 rows at 100k customers, building its hash tables on the pairs instead of on
-- the customers' features and nested-looping into the feature tables' indexes; with the pairs'
-- row count and distinct customers and offers known it streams the pairs past small hash
-- tables (docs/performance.md, "100,000 customers: the candidates' pairs in a table").

{{ config(
    materialized='table',
    post_hook=[
        "{{ add_table_constraints(primary_key=['as_of_date', 'customer_id', 'offer_id']) }}",
        'analyze {{ this }}',
    ],
) }}

with

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

run_dates as (

    select as_of_date
    from {{ ref('int_as_of_dates') }}
    where is_run_date

),

run_date_customers as (

    select
        run_dates.as_of_date,
        customers.customer_id
    from run_dates
    inner join customers
        on run_dates.as_of_date >= coalesce(customers.signup_date, run_dates.as_of_date)

),

{{ candidate_pairs('run_date_customers') }}

select * from candidate_pairs
