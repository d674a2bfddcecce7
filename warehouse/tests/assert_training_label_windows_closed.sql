-- Every training example's label window closed before the run date (shown_date + 7 <
-- as_of_date): no right-censored impression is trained on. Returns the offending rows.
{{ config(meta={'dagster': {'ref': {'name': 'fct_training_examples'}}}) }}

with

training_examples as (

    select * from {{ ref('fct_training_examples') }}

),

run_date as (

    select * from {{ ref('dim_run_date') }}

)

select training_examples.impression_id
from training_examples
cross join run_date
where training_examples.shown_date + {{ var('label_window_days') }} >= run_date.as_of_date
