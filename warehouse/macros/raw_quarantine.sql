{#-
    The warn-severity rules on raw rows, in one place. A raw row that breaks one is quarantined:
    stg_raw__quarantined_rows holds it with its rule and reason, and the stg_raw__ model of its
    table leaves it out, so no feature, label or candidate ever sees it. Error-severity problems
    (null or duplicate primary keys, negative product prices, offers that end before they
    start) are tests on the raw sources instead (_raw__sources.yml): they stop the build.

    Per source table: its primary key, and its rules in order (a row is quarantined under the
    first rule it breaks). A rule has either a `condition`, a SQL predicate over one row of the
    CTE named for the table in stg_raw__quarantined_rows, or a `lookup`: the row's `column`
    matches no row of the CTE `parent` (a null matches none), or with `kept`, no row of a parent
    table checked before it that no rule quarantined, so that the lines of a quarantined order and
    the events of a quarantined impression are quarantined too. Parents are unique on `column`
    (their sources' error tests). Tables are checked in the order listed.
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
                    'lookup': {'parent': 'orders', 'column': 'order_id', 'kept': true},
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
                    'lookup': {'parent': 'impressions', 'column': 'impression_id', 'kept': true},
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
    expression stops at the first true branch), but the window sees every row, so a copy of a
    quarantined row is a duplicate too. -#}
{% macro raw_quarantine_duplicate_rule(table, key, columns) -%}
    {{- return({
        'name': 'duplicate_event',
        'reason': 'a row with a lower ' ~ key ~ ' has the same ' ~ columns | join(', '),
        'condition': 'row_number() over (partition by ' ~ table ~ '.' ~ columns | join(', ' ~ table ~ '.')
            ~ ' order by ' ~ table ~ '.' ~ key ~ ') > 1',
    }) -}}
{%- endmacro %}


{#-
    The rows of `table` (a CTE of that name) with `rule_name`, the first rule each breaks (null
    when none). A lookup rule is a left join to its parent, aliased by the rule's name: hash
    joins, where a correlated `not exists` per row would scan the parent for every row.
-#}
{% macro raw_quarantine_checked_rows(table) -%}
    {%- set rules = raw_quarantine_rules()[table]['rules'] -%}
    select
        {{ table }}.*,
        case
            {%- for rule in rules %}
            {%- if rule.lookup %}
            when {{ rule.name }}.{{ rule.lookup.column }} is null then '{{ rule.name }}'
            {%- else %}
            when {{ rule.condition }} then '{{ rule.name }}'
            {%- endif %}
            {%- endfor %}
        end as rule_name
    from {{ table }}
    {%- for rule in rules if rule.lookup %}
    {%- if rule.lookup.kept %}
    left join (
        select {{ rule.lookup.parent }}_checked.{{ rule.lookup.column }}
        from {{ rule.lookup.parent }}_checked
        where {{ rule.lookup.parent }}_checked.rule_name is null
    ) as {{ rule.name }}
    {%- else %}
    left join {{ rule.lookup.parent }} as {{ rule.name }}
    {%- endif %}
        on {{ table }}.{{ rule.lookup.column }} = {{ rule.name }}.{{ rule.lookup.column }}
    {%- endfor %}
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
