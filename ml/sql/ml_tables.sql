-- Tables that offerrank's Python stages write. {schema} is the configured ml schema and {reader}
-- the reader role, both quoted.
-- Documented for BI in docs/output-tables.md and declared as dbt sources.
create table if not exists {schema}.model_registry (
    model_id text primary key,
    algorithm text not null,                 -- logreg, lgbm_binary or lgbm_lambdarank
    trained_for_date date not null,          -- the as-of date whose run trained it
    features text[] not null,                -- model input columns, in order
    params jsonb not null,
    train_start_date date not null,          -- impressions shown on these dates (inclusive) trained it
    train_end_date date not null,
    valid_start_date date not null,          -- and these validated it (selection, metrics)
    valid_end_date date not null,
    metrics jsonb not null,                  -- validation metrics, also in eval_metrics
    status text not null check (status in ('champion', 'candidate', 'retired')),
    created_at timestamptz not null default now(),
    model_text text not null                 -- the model (LightGBM text or logreg JSON): scoring needs nothing else
);
-- Added by the champion/challenger registry; rows of older versions keep nulls there.
alter table {schema}.model_registry
    add column if not exists categorical_features text[] not null default '{{}}',
    add column if not exists tune_start_date date,      -- held-out slice: early stopping and calibration
    add column if not exists tune_end_date date,
    add column if not exists calibration jsonb,         -- maps the raw score to a probability; null: sigmoid
    add column if not exists manifest_hash text,        -- sha256 of the dbt manifest's feature definitions
    add column if not exists code_version text;         -- git commit of offerrank that trained it
-- At most one champion, enforced by the database.
create unique index if not exists model_registry_single_champion
    on {schema}.model_registry (status) where status = 'champion';

-- Every change of champion, newest last: who held the title when, and why. The references to the
-- registry are checked when a transaction commits, as every write here is one transaction.
create table if not exists {schema}.model_promotions (
    promoted_at timestamptz not null default clock_timestamp(),
    model_id text not null references {schema}.model_registry (model_id) deferrable initially deferred,
    previous_model_id text references {schema}.model_registry (model_id) deferrable initially deferred,
    action text not null check (action in ('promote', 'manual_promote', 'rollback')),
    reason text not null,
    run_date date,                           -- the as-of date of the run that promoted it (null: by hand)
    primary key (promoted_at, model_id)
);

-- Global importance of each feature per model: gain and split counts for LightGBM, mean
-- |contribution| for logistic regression.
create table if not exists {schema}.feature_importance (
    model_id text not null references {schema}.model_registry (model_id) deferrable initially deferred,
    feature text not null,
    importance_type text not null,
    importance double precision not null,
    importance_rank integer not null,        -- 1 = most important within (model_id, importance_type)
    primary key (model_id, importance_type, feature)
);

-- One partition per score date (offer_scores_YYYY_MM_DD, ml/data.py): a run's day is loaded into a
-- new table without its index, indexed in one sorted build and swapped in for the old day's.
create table if not exists {schema}.offer_scores (
    score_date date not null,
    customer_id bigint not null,
    offer_id bigint not null,
    model_id text not null,
    score double precision not null,         -- predicted probability of redemption within 7 days
    rank integer not null,                   -- 1 = best offer for the customer on score_date
    raw_score double precision,              -- the ranker's own score, before calibration
    ranked_by text not null default 'model'  -- 'model', or 'heuristic' (no usable model)
        check (ranked_by in ('model', 'heuristic')),
    -- The experiment variant that served the customer (ml/experiment.py); rows older than
    -- experiments were all served by what is now treatment.
    variant text not null default 'treatment'
        check (variant in ('control', 'treatment', 'canary')),
    primary key (score_date, customer_id, offer_id)
) partition by range (score_date);

create table if not exists {schema}.recommendations (
    score_date date not null,
    customer_id bigint not null,
    rank integer not null,
    offer_id bigint not null,
    score double precision not null,
    model_id text not null,
    primary key (score_date, customer_id, rank)
);
alter table {schema}.recommendations
    add column if not exists ranked_by text not null default 'model' check (ranked_by in ('model', 'heuristic')),
    add column if not exists score_rank integer;  -- the offer's rank in offer_scores, before re-ranking (null: older rows)
alter table {schema}.recommendations
    add column if not exists variant text not null default 'treatment'
        check (variant in ('control', 'treatment', 'canary'));

-- Experiments: one row per customer per experiment, written on the customer's first exposure (the
-- first score date they were served under it), in the score stage's transaction. The shape of an
-- exposure table of warehouse-native experimentation tools: user, timestamp, experiment, variant.
create table if not exists {schema}.experiment_assignments (
    experiment_id text not null,             -- OFFERRANK_EXPERIMENT
    customer_id bigint not null,
    variant text not null check (variant in ('control', 'treatment', 'canary')),
    assigned_at timestamptz not null,        -- midnight UTC of the first score date served
    primary key (experiment_id, customer_id)
);

-- Shadow mode: a challenger's lists of the day, scored and re-ranked as serving would, never served.
create table if not exists {schema}.shadow_recommendations (
    score_date date not null,
    customer_id bigint not null,
    rank integer not null,
    offer_id bigint not null,
    score double precision not null,
    model_id text not null,                  -- the shadow model
    score_rank integer not null,             -- its rank by the shadow's score, before re-ranking
    primary key (score_date, customer_id, rank)
);

-- How much the shadow's lists agree with the served ones: mean overlap@k over customers, per
-- variant of the served list and over all ('all').
create table if not exists {schema}.shadow_agreement (
    score_date date not null,
    variant text not null check (variant in ('control', 'treatment', 'canary', 'all')),
    model_id text not null,                  -- the shadow model
    k integer not null,                      -- OFFERRANK_TOP_K
    customers bigint not null,               -- customers with a served list
    overlap_at_k double precision,           -- mean |served top k ∩ shadow top k| / list length; null: no customers
    primary key (score_date, variant)
);

-- Why each recommendation: its top features by |contribution| to the raw score (TreeSHAP for
-- LightGBM, coefficient x standardised value for logistic regression, log factors for the heuristic).
create table if not exists {schema}.recommendation_explanations (
    score_date date not null,
    customer_id bigint not null,
    offer_id bigint not null,
    feature text not null,
    model_id text not null,
    contribution double precision not null,  -- additive, in the raw score's units
    contribution_rank integer not null,      -- 1 = largest |contribution|
    feature_value text,                      -- the feature's value for the pair, as text
    primary key (score_date, customer_id, offer_id, feature)
);

-- Offline metrics per run date: every scorer (trained candidates, the champion, the heuristic
-- and the oracle) on the same validation window of labelled impressions.
create table if not exists {schema}.eval_metrics (
    as_of_date date not null,                -- the run date whose validation window was scored
    model_id text not null,                  -- a registered model, 'heuristic' or 'oracle' (true probabilities)
    split text not null check (split in ('train', 'tune', 'valid')),
    metric text not null,
    k integer,                               -- list cutoff for @k metrics, null otherwise
    value double precision,                  -- null where undefined (e.g. AUC with one class)
    n_rows bigint not null,                  -- examples evaluated
    n_groups bigint,                         -- customer groups evaluated, for per-customer metrics
    window_start_date date not null,         -- impression dates scored (inclusive)
    window_end_date date not null
);
alter table {schema}.eval_metrics
    -- 'all', or '<column>=<value>' for a customer segment such as 'business_type=retail'
    add column if not exists segment text not null default 'all',
    -- 'raw': the scorer's own order; 'served': the lists after re-ranking (ml/rerank.py)
    add column if not exists ordering text not null default 'raw' check (ordering in ('raw', 'served'));
drop index if exists {schema}.eval_metrics_as_of_grain;
create unique index if not exists eval_metrics_grain_by_segment
    on {schema}.eval_metrics (as_of_date, model_id, split, segment, ordering, metric, k) nulls not distinct;

-- The drift reference of every date that trained models: a deterministic sample of that day's
-- scoring candidates (by md5 of customer_id|offer_id), one row per feature with the sampled values
-- in sample order. fct_scoring_candidates holds only the latest run date, so a champion's training
-- day is kept here; comparing later candidates with it compares like with like.
create table if not exists {schema}.drift_reference (
    reference_date date not null,            -- the run date that trained models on these candidates
    feature text not null,
    kind text not null check (kind in ('numeric', 'categorical')),
    n_rows bigint not null,                  -- sampled candidates: the length of the array
    numeric_values double precision[],       -- numeric features (booleans as 0/1), nulls kept
    categorical_values text[],               -- categorical features, nulls kept
    primary key (reference_date, feature),
    check ((kind = 'numeric') = (numeric_values is not null)),
    check ((kind = 'categorical') = (categorical_values is not null))
);

-- Feature drift per run date: today's scoring candidates against those of the champion's training
-- date (drift_reference; ml/drift.py), measured before training; the date's largest PSI of a
-- feature in the signal is the drift signal of the retraining policy.
create table if not exists {schema}.feature_drift (
    as_of_date date not null,                -- the run date whose candidates were compared
    model_id text not null,                  -- the champion whose training date is the reference
    feature text not null,
    kind text not null check (kind in ('numeric', 'categorical')),
    psi double precision,                    -- population stability index; null when a sample is empty
    ks double precision,                     -- two-sample Kolmogorov-Smirnov statistic; null for categorical
    n_reference bigint not null,             -- rows in the (sampled) reference
    n_current bigint not null,               -- rows in the (sampled) current population
    reference_null_fraction double precision,
    current_null_fraction double precision,
    is_in_signal boolean not null,           -- counts toward the drift signal (false: an offer-level feature)
    reference_date date not null,            -- the champion's trained_for_date, whose candidates are the reference
    primary key (as_of_date, model_id, feature)
);

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

-- The off-policy estimate of a model policy's redemption rate per impression from stochastically
-- logged impressions (ml/off_policy.py, `offerrank evaluate-offline`): IPS and self-normalised IPS
-- of the model's lists, the logging policy's own rate over the same window, and the online rate of
-- the experiment's treatment lists as served (closed loop), to set next to them.
create table if not exists {schema}.off_policy_estimates (
    as_of_date date not null,                -- the run date whose marts and champion were evaluated
    model_id text not null,                  -- the evaluated model (the champion)
    estimator text not null check (estimator in ('ips', 'snips', 'logging_policy', 'online_treatment')),
    estimated_at timestamptz not null default now(),
    window_start date,                       -- the days whose impressions were read (inclusive)
    window_end date,
    value double precision,                  -- redemption rate per impression; null without data
    ci_low double precision,                 -- percentile bootstrap over customers
    ci_high double precision,
    confidence double precision not null,    -- of the interval, e.g. 0.95
    bootstrap_samples integer not null,
    visits bigint not null,                  -- customer days read
    logged_impressions bigint not null,      -- impressions read
    matched_impressions bigint not null,     -- those the model's lists hold (all, for the on-policy rows)
    policy_impressions bigint not null,      -- what the model's lists would show: sum of list lengths (IPS denominator)
    effective_sample_size double precision,  -- Kish: (sum w)^2 / sum w^2 over the matched impressions
    overlaps_training boolean not null,      -- the window overlaps the model's training or tune window
    primary key (as_of_date, model_id, estimator)
);

-- Which versions of this file were applied here (ml/data.py, `ensure_ml_tables`): a stage runs
-- the file only when its digest is not recorded, so that the `alter table`s above, which lock
-- their table exclusively even when they change nothing, do not run on every stage.
create table if not exists {schema}.ml_tables_layout (
    digest text primary key,                 -- sha256 of this file as run: schema and reader role filled in
    applied_at timestamptz not null default now()
);

-- BI reads every table here through the reader role ({reader}, OFFERRANK_READER_ROLE), SELECT
-- only; default privileges extend that to tables a later version creates here as this same user.
grant usage on schema {schema} to {reader};
grant select on all tables in schema {schema} to {reader};
alter default privileges in schema {schema} grant select on tables to {reader};
