-- Feature drift over time, one row per (as_of_date, feature): how far each run date's scoring
-- candidates moved from those of the champion's training date (ml.feature_drift), with the
-- usual reading of PSI as a band and the feature's rank that day, so "PSI per feature over
-- time" and "which features drift most" chart without further SQL. The drift signal of a date,
-- the value the retraining policy compares with OFFERRANK_DRIFT_THRESHOLD, is its largest PSI
-- among the features in the signal: the row with `is_drift_signal`.

with

drifts as (

    select * from {{ ref('stg_ml__feature_drifts') }}

),

ranked as (

    select
        drifts.*,
        rank() over (
            partition by drifts.as_of_date
            order by drifts.psi desc nulls last, drifts.feature asc
        ) as psi_rank,
        row_number() over (
            partition by drifts.as_of_date, drifts.is_in_signal
            order by drifts.psi desc nulls last, drifts.feature asc
        ) as psi_rank_in_group
    from drifts

),

banded as (

    select
        as_of_date,
        feature,
        feature_kind,
        model_id,
        reference_date,
        as_of_date - reference_date as days_since_reference,
        psi,
        ks,
        -- The rules of thumb for PSI (docs/models.md, "Feature drift").
        case
            when psi is null then null
            when psi < 0.1 then 'stable'
            when psi < 0.25 then 'moderate'
            else 'significant'
        end as psi_band,
        psi_rank,
        is_in_signal,
        coalesce(is_in_signal and psi_rank_in_group = 1 and psi is not null, false) as is_drift_signal,
        n_reference,
        n_current,
        reference_null_fraction,
        current_null_fraction
    from ranked

)

select * from banded
