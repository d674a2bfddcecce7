-- The simulator's ground truth. {schema} is the configured truth schema, quoted. No dbt model
-- may read it (tests/warehouse/test_truth_isolation.py); `ml` reads it only to score the oracle.
create table if not exists {schema}.impression_outcomes (
    impression_id bigint primary key,
    -- the probability the redemption draw succeeds (the true redemption model, noise included)
    true_probability double precision not null check (true_probability between 0 and 1),
    -- the probability that the impression's 7-day training label is 1, given the world when it
    -- was shown: the draw, its delay landing before the window, offer and data end, and the
    -- offer not yet redeemed by the customer. The oracle ranks by this.
    label_probability double precision not null check (label_probability between 0 and 1)
);

-- The closed loop (`offerrank simulate`, ml/closed_loop.py). The parameters `offerrank generate`
-- drew the world from: one row; the loop regenerates the latent state from it.
create table if not exists {schema}.generator_params (
    customers integer not null,
    products integer not null,
    offers integer not null,
    days integer not null,
    seed bigint not null,
    end_date date not null
);

-- Redemptions drawn but not yet due: raw gets each on the day it happens.
create table if not exists {schema}.pending_redemptions (
    customer_id bigint not null,
    offer_id bigint not null,
    impression_id bigint not null,
    redeemed_at timestamptz not null,
    primary key (customer_id, offer_id)
);

-- One row per simulated day, written with the day's rows: where the loop continues.
create table if not exists {schema}.simulated_days (
    simulated_on date primary key,
    orders integer not null,
    new_offers integer not null,
    impressions integer not null,
    redemptions_released integer not null,
    redemptions_pending integer not null
);
