-- One row per customer × offer pair to score on the run date, with every model feature as
-- of that date (data from before its 00:00 UTC only). The candidates are every customer who
-- has signed up by then × every offer active that day, except offers targeted at another
-- business type (they are never shown to that customer): int_customers_paired_with_offers,
-- by macros/candidate_features.sql, the one definition of a candidate and its features, which
-- fct_logged_visit_candidates shares. The feature columns are those the feature marts' YAML
-- flags `meta: {feature: true}` (macros/feature_columns.sql), the same as in
-- fct_training_examples. has_redeemed_offer is not a feature: the re-ranker (ml/rerank.py)
-- never recommends an offer already redeemed. The pairs are all of the run date: their
-- interaction features are computed for one as-of date (`one_as_of_date`, in
-- macros/customer_offer_features.sql), from the run date's window aggregated once by
-- int_customer_category_windows_of_run_date and int_customer_products_bought_by_run_date,
-- which dbt builds before feat_customer_daily.

-- The planner's default cost of passing a row from a parallel worker to the leader (0.1) puts
-- the 4.9M rows of 100k customers through a serial plan; at 0.01 it joins them in two workers,
-- and the model's `create table as` takes 11-12 s instead of 13-15 s alone (docs/performance.md,
-- "the candidates' joins in parallel"). `set local`: this model's transaction alone.
{{ config(
    pre_hook='set local parallel_tuple_cost = 0.01',
    post_hook="{{ add_table_constraints(primary_key=['as_of_date', 'customer_id', 'offer_id'], not_null=['has_redeemed_offer']) }}",
) }}

with

-- not materialized: each use reads the table (its key index gives the date bounds), where a
-- materialized CTE would copy its 4.9M rows (at 100k customers) to disk first
run_date_pairs as not materialized (

    select * from {{ ref('int_customers_paired_with_offers') }}

),

{{ candidate_features('run_date_pairs', one_as_of_date=true) }}

select * from candidates
