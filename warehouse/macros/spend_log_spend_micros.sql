{#-
    A category's term s ln s of the category entropy H = ln S - (sum of s ln s) / S, for a window
    spend s, as an integer number of millionths (0 when s is 0). Integer terms add and cancel
    exactly, so the entropy is the same however the window totals are summed.
-#}
{% macro spend_log_spend_micros(spend_amount) -%}
    case
        when {{ spend_amount }} > 0
            then
                round(
                    1e6
                    * {{ spend_amount }}::double precision
                    * ln({{ spend_amount }}::double precision)
                )::bigint
        else 0
    end
{%- endmacro %}
