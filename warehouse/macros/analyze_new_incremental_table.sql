{#-
    A post-hook of every model (dbt_project.yml): ANALYZE an incremental model's table when a
    full refresh has just rewritten it. Autovacuum analyses a new table only a minute or more
    later (autovacuum_naptime), and until then the planner guesses: in a daily build run right
    after a full one, at 100k customers, the tests of feat_customer_daily's one new date took
    6.0 s and the training examples' check against the labels 16.1 s; with statistics, 0.3 and
    1.7 s (docs/performance.md, "statistics after a full refresh"). A daily build's insert of one
    date needs no new statistics: the planner reads a date past the histogram off the date index's
    ends. The tables other materializations write are rebuilt by every build alike.
-#}
{% macro analyze_after_full_refresh() -%}
    {%- if model.config.materialized == 'incremental' and should_full_refresh() -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
