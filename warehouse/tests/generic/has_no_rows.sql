{#- The model is empty: fails on each of its rows (give it severity warn to report, not stop). -#}
{% test has_no_rows(model) %}

    select *
    from {{ model }}

{% endtest %}
