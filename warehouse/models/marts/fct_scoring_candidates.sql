-- One row per customer × offer pair to score on the run date, with every model feature as
-- of that date (data from before its 00:00 UTC only). The candidates are every customer who
-- has signed up by then × every offer active that day, except offers targeted at another
-- business type (they are never shown to that customer): macros/candidate_features.sql, the
-- one definition of a candidate and its features, which fct_logged_visit_candidates shares.
-- The feature columns are those the feature marts' YAML flags `meta: {feature: true}`
-- (macros/feature_columns.sql), the same as in fct_training_examples. has_redeemed_offer is
-- not a feature: the re-ranker (ml/rerank.py) never recommends an offer already redeemed.

{{ config(
    post_hook="{{ add_table_constraints(['as_of_date', 'customer_id', 'offer_id'], not_null=['has_redeemed_offer']) }}",
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

{{ candidate_features('run_date_customers') }}

select * from candidates
