-- Every scorer's metrics on each run date's validation window, one row per (as_of_date,
-- model_id, segment, ordering, metric_label), with the oracle's and the heuristic's value of the
-- same metric on the same rows beside it and the gap to the oracle: "NDCG@5 over time, champion
-- vs oracle" is `where role = 'champion' and metric_label = 'ndcg@5'` (segment 'all', ordering 'raw').

with

metrics as (

    select * from {{ ref('stg_ml__eval_metrics') }}

),

recommendations as (

    select * from {{ ref('stg_ml__recommendations') }}

),

models as (

    select * from {{ ref('stg_ml__registered_models') }}

),

validation_metrics as (

    select
        metrics.*,
        metrics.metric || coalesce('@' || metrics.k, '') as metric_label
    from metrics
    where metrics.split = 'valid'

),

-- The champion of a date is the model that ranked its treatment recommendations (the champion
-- that served the day, after that run's training and promotion); the heuristic when none could.
-- The control and canary variants of an experiment are served by other rankers on purpose.
serving_scorers as (

    select
        score_date as as_of_date,
        min(model_id) as serving_model_id
    from recommendations
    where
        rank = 1
        and variant = 'treatment'
    group by score_date

),

-- A date evaluated without recommendations (a run that stopped before them) falls back on the
-- registry: its current champion.
current_champion as (

    select model_id as champion_model_id
    from models
    where status = 'champion'

),

reference_values as (

    select
        as_of_date,
        segment,
        ordering,
        metric_label,
        max(metric_value) filter (where model_id = 'oracle') as oracle_value,
        max(metric_value) filter (where model_id = 'heuristic') as heuristic_value
    from validation_metrics
    where model_id in ('oracle', 'heuristic')
    group by as_of_date, segment, ordering, metric_label

),

metrics_with_roles as (

    select
        validation_metrics.*,
        models.algorithm,
        case
            when validation_metrics.model_id in ('oracle', 'heuristic') then validation_metrics.model_id
            when
                validation_metrics.model_id
                = coalesce(serving_scorers.serving_model_id, current_champion.champion_model_id)
                then 'champion'
            else 'candidate'
        end as scorer_role,
        coalesce(validation_metrics.model_id = serving_scorers.serving_model_id, false) as is_serving,
        case
            when
                validation_metrics.metric in (
                    'roc_auc', 'ndcg', 'precision', 'recall', 'map', 'margin', 'margin_lift', 'coverage', 'diversity'
                )
                then true
            when validation_metrics.metric in ('log_loss', 'brier', 'ece') then false
        end as is_higher_better
    from validation_metrics
    left join serving_scorers
        on validation_metrics.as_of_date = serving_scorers.as_of_date
    left join models
        on validation_metrics.model_id = models.model_id
    left join current_champion
        on true

),

metrics_against_references as (

    select
        metrics_with_roles.as_of_date,
        metrics_with_roles.model_id,
        metrics_with_roles.segment,
        metrics_with_roles.ordering,
        metrics_with_roles.metric_label,
        metrics_with_roles.metric,
        metrics_with_roles.k,
        metrics_with_roles.scorer_role,
        metrics_with_roles.algorithm,
        metrics_with_roles.is_serving,
        metrics_with_roles.is_higher_better,
        metrics_with_roles.metric_value,
        reference_values.oracle_value,
        reference_values.heuristic_value,
        -- How far behind the oracle, whichever way the metric improves: positive = worse.
        case
            when metrics_with_roles.is_higher_better
                then reference_values.oracle_value - metrics_with_roles.metric_value
            when not metrics_with_roles.is_higher_better
                then metrics_with_roles.metric_value - reference_values.oracle_value
        end as gap_to_oracle,
        metrics_with_roles.n_rows,
        metrics_with_roles.n_groups,
        metrics_with_roles.window_start_date,
        metrics_with_roles.window_end_date
    from metrics_with_roles
    left join reference_values
        on
            metrics_with_roles.as_of_date = reference_values.as_of_date
            and metrics_with_roles.segment = reference_values.segment
            and metrics_with_roles.ordering = reference_values.ordering
            and metrics_with_roles.metric_label = reference_values.metric_label

)

select * from metrics_against_references
