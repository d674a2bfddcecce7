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
