{#- The two-sided p-value of a standard normal statistic z: 2 (1 - Φ(|z|)) = erfc(|z| / √2).
    PostgreSQL has erfc only from version 18 and offerrank supports 15 and newer, so this is the
    Chebyshev fit of erfc in Numerical Recipes (erfcc, fractional error below 1.2e-7 for every
    argument), its polynomial in t = 1 / (1 + x / 2) evaluated by Horner's rule. -#}
{% macro normal_two_sided_p_value(z) -%}
    {%- set coefficients = [
        -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
        0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277
    ] -%}
    {%- set x -%} (abs({{ z }}) / sqrt(2.0)) {%- endset -%}
    {%- set t -%} (1.0 / (1.0 + 0.5 * {{ x }})) {%- endset -%}
    {%- set ns = namespace(horner=coefficients[-1] ~ '') -%}
    {%- for coefficient in coefficients[:-1] | reverse -%}
        {%- set ns.horner = '(' ~ coefficient ~ ' + ' ~ t ~ ' * ' ~ ns.horner ~ ')' -%}
    {%- endfor -%}
    ({{ t }} * exp(-{{ x }} * {{ x }} + {{ ns.horner }}))
{%- endmacro %}
