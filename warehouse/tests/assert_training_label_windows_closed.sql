-- No training example's label window was still open when it was built: every example was
-- built by a run as of a date no later than the latest date the features are built for, so
-- its window (shown_date to shown_date + 7) closed before that date. Returns the offending
-- rows.
{{ config(meta={'dagster': {'ref': {'name': 'fct_training_examples'}}}) }}

with

training_examples as (

    select * from {{ ref('fct_training_examples') }}

),

customer_features as (

    select * from {{ ref('feat_customer_daily') }}

),

latest_build as (

    select max(as_of_date) as as_of_date
    from customer_features

)

select training_examples.impression_id
from training_examples
cross join latest_build
where training_examples.shown_date + {{ var('label_window_days') }} >= latest_build.as_of_date
