-- Tables that offerrank's Python stages write. {schema} is the configured ml schema and {reader}
-- the reader role, both quoted.
-- Documented for BI in docs/output-tables.md and declared as dbt sources.
create table if not exists {schema}.model_registry (
    model_id text primary key,
    algorithm text not null,
    trained_for_date date not null,          -- the as-of date whose run trained it
    features text[] not null,                -- model input columns, in order
    params jsonb not null,
    train_start_date date not null,          -- impressions shown on these dates (inclusive) trained it
    train_end_date date not null,
    valid_start_date date not null,          -- and these validated it (early stopping, metrics)
    valid_end_date date not null,
    metrics jsonb not null,                  -- validation metrics, also in eval_metrics
    status text not null check (status in ('champion', 'candidate', 'retired')),
    created_at timestamptz not null default now(),
    model_text text not null                 -- LightGBM model text: scoring needs nothing else
);
-- At most one champion, enforced by the database.
create unique index if not exists model_registry_single_champion
    on {schema}.model_registry (status) where status = 'champion';

create table if not exists {schema}.offer_scores (
    score_date date not null,
    customer_id bigint not null,
    offer_id bigint not null,
    model_id text not null,
    score double precision not null,         -- predicted probability of redemption within 7 days
    rank integer not null,                   -- 1 = best offer for the customer on score_date
    primary key (score_date, customer_id, offer_id)
);

create table if not exists {schema}.recommendations (
    score_date date not null,
    customer_id bigint not null,
    rank integer not null,
    offer_id bigint not null,
    score double precision not null,
    model_id text not null,
    primary key (score_date, customer_id, rank)
);

create table if not exists {schema}.eval_metrics (
    model_id text not null,                  -- the scorer: a registered model, or 'oracle' (true probabilities)
    evaluated_model_id text not null,        -- whose training/validation rows were scored
    split text not null check (split in ('train', 'valid')),
    metric text not null,
    k integer,                               -- list cutoff for @k metrics, null otherwise
    value double precision not null,
    n_rows bigint not null,                  -- examples evaluated
    n_groups bigint                          -- customer groups evaluated, for per-customer metrics
);
-- Tables made before the oracle had no evaluated_model_id: every row there scored its own model.
alter table {schema}.eval_metrics add column if not exists evaluated_model_id text;
update {schema}.eval_metrics set evaluated_model_id = model_id where evaluated_model_id is null;
alter table {schema}.eval_metrics alter column evaluated_model_id set not null;
alter table {schema}.eval_metrics drop constraint if exists eval_metrics_model_id_split_metric_k_key;
create unique index if not exists eval_metrics_grain
    on {schema}.eval_metrics (model_id, evaluated_model_id, split, metric, k) nulls not distinct;

create table if not exists {schema}.pipeline_runs (
    run_id text not null,                    -- the Dagster run id
    run_date date,                           -- the as-of date the run was for (null if it failed before knowing)
    step text not null,
    status text not null check (status in ('running', 'success', 'failed')),
    started_at timestamptz not null,
    finished_at timestamptz,
    seconds double precision,
    active_offers integer,
    candidate_pairs bigint,
    recommendations_written bigint,
    rows_written bigint,
    message text,
    primary key (run_id, step)
);

-- BI reads every table here through the reader role ({reader}, OFFERRANK_READER_ROLE), SELECT
-- only; default privileges extend that to tables a later version creates here as this same user.
grant usage on schema {schema} to {reader};
grant select on all tables in schema {schema} to {reader};
alter default privileges in schema {schema} grant select on tables to {reader};
