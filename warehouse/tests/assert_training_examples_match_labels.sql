-- fct_training_examples holds exactly the labelled impressions known on the run date, with
-- their labels and relevance grades: none missing, none extra, none relabelled or regraded.
-- Returns the differing impressions. On a daily build, those shown on the days it labelled
-- (macros/recent_rows.sql).
{{ config(meta={'dagster': {'ref': {'name': 'fct_training_examples'}}}) }}
{%- set recent_start = recent_rows_start() %}

with

training_examples as (

    select * from {{ ref('fct_training_examples') }}

),

impressions_labelled as (

    select * from {{ ref('int_impressions_labelled') }}

),

run_date as (

    select * from {{ ref('dim_run_date') }}

),

examples_known_on_run_date as (

    select training_examples.*
    from training_examples
    inner join run_date
        on training_examples.shown_date <= run_date.last_labelled_shown_date
    {%- if recent_start is not none %}
    where training_examples.shown_date >= {{ recent_start }}
    {%- endif %}

),

labels_known_on_run_date as (

    select impressions_labelled.*
    from impressions_labelled
    inner join run_date
        on impressions_labelled.shown_date <= run_date.last_labelled_shown_date
    {%- if recent_start is not none %}
    where impressions_labelled.shown_date >= {{ recent_start }}
    {%- endif %}

)

select
    coalesce(
        examples_known_on_run_date.impression_id, labels_known_on_run_date.impression_id
    ) as impression_id,
    examples_known_on_run_date.label as example_label,
    labels_known_on_run_date.label as known_label,
    examples_known_on_run_date.relevance as example_relevance,
    labels_known_on_run_date.relevance as known_relevance
from examples_known_on_run_date
full outer join labels_known_on_run_date
    on examples_known_on_run_date.impression_id = labels_known_on_run_date.impression_id
where
    examples_known_on_run_date.label is distinct from labels_known_on_run_date.label
    or examples_known_on_run_date.relevance is distinct from labels_known_on_run_date.relevance
