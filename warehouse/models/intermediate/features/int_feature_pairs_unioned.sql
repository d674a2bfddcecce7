-- The (as-of date, customer, offer) triples that need customer × offer features: each labelled
-- impression, as of the day it was shown, and each scoring pair, as of the run date. Computing
-- interactions for these pairs only avoids a customer × offer × day cross product.

with

impressions_labelled as (

    select * from {{ ref('int_impressions_labelled') }}

),

scoring_pairs as (

    select * from {{ ref('int_scoring_pairs_enumerated') }}

),

feature_pairs as (

    -- a customer can be shown the same offer more than once a day
    select distinct
        shown_date as as_of_date,
        customer_id,
        offer_id
    from impressions_labelled

    -- disjoint: labelled impressions were shown at least 8 days before the run date
    union all

    select
        as_of_date,
        customer_id,
        offer_id
    from scoring_pairs

)

select * from feature_pairs
