-- The customer × offer pairs to score on the run date: every customer who has signed up by
-- then × every offer active that day, except offers targeted at another business type
-- (they are never shown to that customer, so they are not candidates).

with

run_dates as (

    select as_of_date
    from {{ ref('int_as_of_dates') }}
    where is_run_date

),

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

offers as (

    select * from {{ ref('int_offers_joined_to_products') }}

),

scoring_pairs as (

    select
        run_dates.as_of_date,
        customers.customer_id,
        offers.offer_id
    from run_dates
    inner join offers
        on run_dates.as_of_date between offers.starts_on and offers.ends_on
    inner join customers
        on
            run_dates.as_of_date >= coalesce(customers.signup_date, run_dates.as_of_date)
            and (
                offers.target_business_type is null
                or offers.target_business_type = customers.business_type
            )

)

select * from scoring_pairs
