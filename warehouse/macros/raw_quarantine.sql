{#-
    The warn-severity rules on raw rows, in one place. A raw row that breaks one is quarantined:
    stg_raw__quarantined_rows holds it with its rule and reason, and the stg_raw__ model of its
    table leaves it out, so no feature, label or candidate ever sees it. Error-severity problems
    (null or duplicate primary keys, negative product prices, offers that end before they
    start) are tests on the raw sources instead (_raw__sources.yml): they stop the build.

    Per source table: its primary key, and its rules in order (a row is quarantined under the
    first rule it breaks). A rule has one of:
    - a `condition`, a SQL predicate over one row of the CTE named for the table in
      stg_raw__quarantined_rows;
    - a `lookup`: the row's `column` matches no row of the table `parent` (a null matches none);
    - a `parent_quarantined`: a table checked before it, keyed by one column of the same name in
      both, and the row's parent row is quarantined, so that the lines of a quarantined order and
      the events of a quarantined impression are quarantined too.
    Parents are unique on their keys (their sources' error tests). Tables are checked in the
    order listed.
-#}
{% macro raw_quarantine_rules() -%}
    {%- set unknown_customer = {
        'name': 'unknown_customer',
        'reason': 'its customer_id is null or not in raw customers',
        'lookup': {'parent': 'customers', 'column': 'customer_id'},
    } -%}
    {%- set unknown_offer = {
        'name': 'unknown_offer',
        'reason': 'its offer_id is null or not in raw offers',
        'lookup': {'parent': 'offers', 'column': 'offer_id'},
    } -%}
    {{- return({
        'orders': {
            'key': ['order_id'],
            'rules': [unknown_customer] + raw_quarantine_timestamp_rules('orders', 'ordered_at'),
        },
        'order_items': {
            'key': ['order_id', 'line_number'],
            'rules': [
                {
                    'name': 'unknown_order',
                    'reason': 'its order_id is null or not in raw orders',
                    'lookup': {'parent': 'orders', 'column': 'order_id'},
                },
                {
                    'name': 'quarantined_order',
                    'reason': 'its order is quarantined',
                    'parent_quarantined': 'orders',
                },
                {
                    'name': 'unknown_product',
                    'reason': 'its product_id is null or not in raw products',
                    'lookup': {'parent': 'products', 'column': 'product_id'},
                },
                {
                    'name': 'non_positive_quantity',
                    'reason': 'its quantity is missing, zero or negative',
                    'condition': 'coalesce(order_items.quantity, 0) <= 0',
                },
                {
                    'name': 'negative_price',
                    'reason': 'its unit_price is missing or negative',
                    'condition': 'coalesce(order_items.paid_unit_price, -1) < 0',
                },
            ],
        },
        'impressions': {
            'key': ['impression_id'],
            'rules': [unknown_customer, unknown_offer]
                + raw_quarantine_timestamp_rules('impressions', 'shown_at')
                + [raw_quarantine_duplicate_rule('impressions', 'impression_id', ['customer_id', 'offer_id', 'shown_at'])],
        },
        'redemptions': {
            'key': ['redemption_id'],
            'rules': [unknown_customer, unknown_offer]
                + raw_quarantine_timestamp_rules('redemptions', 'redeemed_at')
                + [raw_quarantine_duplicate_rule('redemptions', 'redemption_id', ['customer_id', 'offer_id', 'redeemed_at'])],
        },
        'interaction_events': {
            'key': ['event_id'],
            'rules': [
                {
                    'name': 'unknown_impression',
                    'reason': 'its impression_id is null or not in raw impressions',
                    'lookup': {'parent': 'impressions', 'column': 'impression_id'},
                },
                {
                    'name': 'quarantined_impression',
                    'reason': 'its impression is quarantined',
                    'parent_quarantined': 'impressions',
                },
            ]
                + raw_quarantine_timestamp_rules('interaction_events', 'event_at')
                + [raw_quarantine_duplicate_rule('interaction_events', 'event_id', ['impression_id', 'event_type', 'event_at'])],
        },
    }) -}}
{%- endmacro %}


{#- The rules on an event's timestamp `column`: it is missing, or later than the build's start. -#}
{% macro raw_quarantine_timestamp_rules(table, column) -%}
    {{- return([
        {
            'name': 'missing_timestamp',
            'reason': 'its ' ~ column ~ ' is null',
            'condition': table ~ '.' ~ column ~ ' is null',
        },
        {
            'name': 'future_timestamp',
            'reason': 'its ' ~ column ~ ' is after the build started',
            'condition': table ~ '.' ~ column ~ ' > current_timestamp',
        },
    ]) -}}
{%- endmacro %}


{#- A row of `table` is a duplicate event when a row with a lower `key` has the same `columns`:
    the first by key is kept. Only rows that broke no earlier rule reach this test (a case
    expression stops at the first true branch), but the window sees every row checked, so a copy
    of a quarantined row is a duplicate too. The columns hold the event's timestamp, so copies
    share a day: a daily build checks all of them or none. -#}
{% macro raw_quarantine_duplicate_rule(table, key, columns) -%}
    {{- return({
        'name': 'duplicate_event',
        'reason': 'a row with a lower ' ~ key ~ ' has the same ' ~ columns | join(', '),
        'condition': 'row_number() over (partition by ' ~ table ~ '.' ~ columns | join(', ' ~ table ~ '.')
            ~ ' order by ' ~ table ~ '.' ~ key ~ ') > 1',
    }) -}}
{%- endmacro %}


{#-
    The rows of `table` (a CTE of that name: the rows to check) with `rule_name`, the first rule
    each breaks (null when none). A lookup rule is a left join to every row of its parent (the
    CTE all_<parent>), aliased by the rule's name: hash joins, where a correlated `not exists`
    per row would scan the parent for every row. A parent_quarantined rule is a left join to the
    keys of the parent's quarantined rows (the CTE <parent>_quarantined), a few rows.
-#}
{% macro raw_quarantine_checked_rows(table) -%}
    {%- set rules = raw_quarantine_rules()[table]['rules'] -%}
    select
        {{ table }}.*,
        case
            {%- for rule in rules %}
            {%- if rule.lookup %}
            when {{ rule.name }}.{{ rule.lookup.column }} is null then '{{ rule.name }}'
            {%- elif rule.parent_quarantined %}
            when {{ rule.name }}.{{ raw_quarantine_parent_key(rule) }} is not null then '{{ rule.name }}'
            {%- else %}
            when {{ rule.condition }} then '{{ rule.name }}'
            {%- endif %}
            {%- endfor %}
        end as rule_name
    from {{ table }}
    {%- for rule in rules if rule.lookup %}
    left join all_{{ rule.lookup.parent }} as {{ rule.name }}
        on {{ table }}.{{ rule.lookup.column }} = {{ rule.name }}.{{ rule.lookup.column }}
    {%- endfor %}
    {%- for rule in rules if rule.parent_quarantined %}
    {%- set key = raw_quarantine_parent_key(rule) %}
    left join {{ rule.parent_quarantined }}_quarantined as {{ rule.name }}
        on {{ table }}.{{ key }} = {{ rule.name }}.{{ key }}
    {%- endfor %}
{%- endmacro %}


{#- The one key column of the parent table of a parent_quarantined `rule`. -#}
{% macro raw_quarantine_parent_key(rule) -%}
    {%- set key = raw_quarantine_rules()[rule.parent_quarantined]['key'] -%}
    {%- if key | length != 1 -%}
        {{ exceptions.raise_compiler_error(
            "rule " ~ rule.name ~ ": a parent_quarantined table must have a one-column key, "
            ~ rule.parent_quarantined ~ " has " ~ key) }}
    {%- endif -%}
    {{- return(key[0]) -}}
{%- endmacro %}


{#- The checked tables that a parent_quarantined rule names. -#}
{% macro raw_quarantine_parents() -%}
    {%- set parents = [] -%}
    {%- for checks in raw_quarantine_rules().values() -%}
        {%- for rule in checks['rules'] if rule.parent_quarantined and rule.parent_quarantined not in parents -%}
            {%- do parents.append(rule.parent_quarantined) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{- return(parents) -}}
{%- endmacro %}


{#-
    The keys of the quarantined rows of `table`: those its check found, and on a daily build the
    kept verdicts of the earlier builds (the CTE previous_verdicts), keyed as the base model
    types them.
-#}
{% macro raw_quarantine_quarantined_keys(table, with_previous_verdicts) -%}
    {%- set key = raw_quarantine_rules()[table]['key'][0] -%}
    select {{ table }}_checked.{{ key }}
    from {{ table }}_checked
    where {{ table }}_checked.rule_name is not null
    {%- if with_previous_verdicts %}
    union
    select (jsonb_populate_record(null::{{ ref('base_raw__' ~ table) }}, previous_verdicts.row_key)).{{ key }}
    from previous_verdicts
    where previous_verdicts.source_table = '{{ table }}'
    {%- endif %}
{%- endmacro %}


{#-
    Which day a row of `table` belongs to, from its base model's meta (macros/recent_rows.sql):
    its own `recent_rows_column`, or its parent's through `recent_rows_parent` (an order's
    lines: their order's day). A dict with `column`, and for a parent's day `parent` (the
    parent table) and `key` (the column they share).
-#}
{% macro raw_quarantine_row_day(table) -%}
    {%- if not execute -%}
        {#- the graph is not built while dbt parses: the SQL rendered then is not run -#}
        {{ return({'column': none}) }}
    {%- endif -%}
    {%- set node = model_node('base_raw__' ~ table) -%}
    {%- set meta = node.config.get('meta', {}) if node else {} -%}
    {%- if meta.get('recent_rows_column') -%}
        {{ return({'column': meta['recent_rows_column']}) }}
    {%- elif meta.get('recent_rows_parent') -%}
        {%- set parent = meta['recent_rows_parent']['model'] | replace('base_raw__', '') -%}
        {%- set parent_day = raw_quarantine_row_day(parent) -%}
        {{ return({'column': parent_day['column'], 'parent': parent, 'key': meta['recent_rows_parent']['column']}) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(
        "base_raw__" ~ table ~ " needs meta recent_rows_column or recent_rows_parent: the quarantine's"
        ~ " daily check reads which day its rows belong to") }}
{%- endmacro %}


{#-
    The rows of `table` a build checks, from all_<table>: every row, or on a daily build (`start`,
    a SQL date) the rows of day `start` on or of no day, whose verdicts it replaces. Rows dated
    through a parent are those of the checked parents (the CTE named for it), and those whose
    parent is missing (no day either): two disjoint sets, as a `union all` rather than one `or`,
    so that the first is looked up by the parent's key (an order's lines, by index) and only the
    second, an anti join, reads every row.
-#}
{% macro raw_quarantine_rows_to_check(table, start) -%}
    select * from all_{{ table }}
    {%- if start is not none %}
    {%- set day = raw_quarantine_row_day(table) %}
    where
        {%- if day.parent %}
        all_{{ table }}.{{ day.key }} in (select {{ day.parent }}.{{ day.key }} from {{ day.parent }})
    union all
    select * from all_{{ table }}
    where
        not exists (
            select
            from all_{{ day.parent }}
            where all_{{ day.parent }}.{{ day.key }} = all_{{ table }}.{{ day.key }}
        )
        {%- else %}
        {{ raw_quarantine_rechecked(start, 'all_' ~ table ~ '.' ~ day.column) }}
        {%- endif %}
    {%- endif %}
{%- endmacro %}


{#- The quarantined rows of `table`, each with its key, rule, day (row_date) and the row itself. -#}
{% macro raw_quarantine_found_rows(table) -%}
    {%- set day = raw_quarantine_row_day(table) -%}
    {%- set checked = table ~ '_checked' -%}
    select
        '{{ table }}' as source_table,
        {{ raw_row_key(table, checked) }} as row_key,
        {{ checked }}.rule_name,
        {%- if day.parent %}
        row_day.{{ day.column }} as row_date,
        {%- else %}
        {{ checked }}.{{ day.column }} as row_date,
        {%- endif %}
        to_jsonb({{ checked }}) - 'rule_name' as raw_row
    from {{ checked }}
    {%- if day.parent %}
    left join all_{{ day.parent }} as row_day
        on {{ checked }}.{{ day.key }} = row_day.{{ day.key }}
    {%- endif %}
    where {{ checked }}.rule_name is not null
{%- endmacro %}


{#-
    The rows a build checks again, as a condition on their day, `day_column`: on a daily build
    those of day `start` on or of no day, else all. On stg_raw__quarantined_rows' row_date, the
    verdicts it replaces; on a dated raw table's day, the rows it checks.
-#}
{% macro raw_quarantine_rechecked(start, day_column='row_date') -%}
    {%- if start is none -%}
        true
    {%- else -%}
        {{ day_column }} >= {{ start }} or {{ day_column }} is null
    {%- endif -%}
{%- endmacro %}


{#- The verdicts a build replaces, as a condition on stg_raw__quarantined_rows: the `recheck`
    strategy's rechecked_rows (macros/incremental_recheck.sql). -#}
{% macro raw_quarantine_rechecked_verdicts() -%}
    {{ raw_quarantine_rechecked(recent_rows_start()) }}
{%- endmacro %}


{#- The primary key of a row of `table` (in the relation or CTE `alias`) as a jsonb object. -#}
{% macro raw_row_key(table, alias=none) -%}
    jsonb_build_object(
        {%- for column in raw_quarantine_rules()[table]['key'] %}
        '{{ column }}', {{ alias or table }}.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}


{#- Every (source_table, rule_name, reason), as the rows of a `values` list. -#}
{% macro raw_quarantine_reasons() -%}
    {%- set rows = [] -%}
    {%- for table, checks in raw_quarantine_rules().items() -%}
        {%- for rule in checks['rules'] -%}
            {%- do rows.append("('" ~ table ~ "', '" ~ rule.name ~ "', '" ~ rule.reason ~ "')") -%}
        {%- endfor -%}
    {%- endfor -%}
    {{- rows | join(',\n        ') -}}
{%- endmacro %}


{#-
    A where condition of a stg_raw__ model: the rows of `table` (its base model, in the relation
    or alias `table`) that stg_raw__quarantined_rows does not hold back. `key_types` maps each
    key column to the type its base model gives it. Inline, not a CTE, so that the view stays
    one select that PostgreSQL flattens into its readers (warehouse/README.md).
-#}
{% macro raw_row_not_quarantined(table, key_types) -%}
    {%- if key_types.keys() | list != raw_quarantine_rules()[table]['key'] -%}
        {{ exceptions.raise_compiler_error(
            "raw_row_not_quarantined: key_types of " ~ table ~ " must name its key columns "
            ~ raw_quarantine_rules()[table]['key'] ~ " in order, got " ~ (key_types.keys() | list)) }}
    {%- endif %}
    not exists (
        select
        from {{ ref('stg_raw__quarantined_rows') }} as quarantined_rows
        where
            quarantined_rows.source_table = '{{ table }}'
            {%- for column, type in key_types.items() %}
            and (quarantined_rows.row_key ->> '{{ column }}')::{{ type }} = {{ table }}.{{ column }}
            {%- endfor %}
    )
{%- endmacro %}
