-- The simulator's ground truth. {schema} is the configured truth schema, quoted. No dbt model
-- may read it (tests/warehouse/test_truth_isolation.py); `ml` reads it only to score the oracle.
create table if not exists {schema}.impression_outcomes (
    impression_id bigint primary key,
    true_probability double precision not null check (true_probability between 0 and 1)
);
