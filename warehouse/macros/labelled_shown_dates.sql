{#-
    The shown dates whose labels a run adds, as a one-row select of first_shown_date and
    last_shown_date: the impressions whose 7-day label window closed before the run date
    (shown on run date - 8 or before), from the day after the newest one the incremental model
    holds in `key_column` (macros/incremental_first_date.sql). The labels, the impressions'
    interaction features and the training examples all add these same dates.
-#}
{% macro labelled_shown_dates(key_column) -%}
    {%- set days_until_labelled = var('label_window_days') + 1 -%}
    select
        {{ incremental_first_date(key_column, 'run_dates.as_of_date - ' ~ days_until_labelled) }}
            as first_shown_date,
        run_dates.as_of_date - {{ days_until_labelled }} as last_shown_date
    from {{ ref('int_as_of_dates') }} as run_dates
    where run_dates.is_run_date
{%- endmacro %}
