{#-
    On a daily build, data tests read the rows the build wrote, not the whole history again.

    A model that grows by the day names, in its `meta`, the date column that says which day a
    row belongs to: `recent_rows_column`. (The raw sources' tests are not scoped: they are the
    check on the way in.) With the run parameters as_of_date D and test_recent_days N (`--vars
    '{as_of_date: D, test_recent_days: N}'`, or in the environment as the daily run builds:
    macros/run_parameter.sql, orchestration/dbt_builds.py), the tests of such a model read only
    its rows of day D - N on: the training examples whose label window closed that day (D - 8; N
    is larger after missed days, from the first example date the build adds), and the raw rows
    of those days. A model whose rows are as of the run date, and whose build writes only the
    dates it adds (feat_customer_daily, feat_offer_daily), says so with
    `recent_rows_as_of_run_date: true`: its tests read its rows from the first as-of date the
    build adds, label_window_days + 1 later (D on a daily run), not the dates earlier builds
    wrote and tested. Without `test_recent_days` (a full refresh, a plain `dbt build` or `dbt
    test`), every row is tested.

    A model whose rows have no date of their own (an order's lines) names instead the model and
    key column of the rows they belong to: `recent_rows_parent: {model: base_raw__orders,
    column: order_id}`. Its tests read the rows whose parent is recent, through the parent's own
    `recent_rows_column`.
-#}

{#- The first day a daily build's tests read, as a SQL date expression; none: every day. With
    `as_of_run_date`, the first as-of date the build adds (the examples' first date + label_window_days + 1). -#}
{% macro recent_rows_start(as_of_run_date=false) -%}
    {%- set days = run_parameter('test_recent_days') -%}
    {%- if days is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not days.isdigit() -%}
        {{ exceptions.raise_compiler_error(
            "test_recent_days (var or OFFERRANK_TEST_RECENT_DAYS) must be a whole number of days, got: " ~ days) }}
    {%- endif -%}
    {%- set as_of = as_of_date_parameter() -%}
    {%- if as_of is none -%}
        {{ exceptions.raise_compiler_error("test_recent_days needs as_of_date (var or OFFERRANK_AS_OF_DATE)") }}
    {%- endif -%}
    {%- set days_back = (days | int) - ((var('label_window_days') + 1) if as_of_run_date else 0) -%}
    {{ return("'" ~ as_of ~ "'::date - " ~ ([days_back, 0] | max)) }}
{%- endmacro %}

{#- The `meta` of the model a generic test tests; empty for a source's test. -#}
{% macro tested_node_meta() -%}
    {%- set attached = model.get('attached_node') -%}
    {%- if attached and attached in graph.nodes -%}
        {{ return(graph.nodes[attached].config.get('meta', {})) }}
    {%- endif -%}
    {{ return({}) }}
{%- endmacro %}

{#-
    Whether the database enforces, over the whole of `relation`, what the generic test being
    compiled checks: a uniqueness test of a key the table enforces, or a not-null test of a NOT
    NULL column (macros/enforced_constraints.sql). Then every subset of its rows passes too, and
    the test is given the table itself, not its recent rows: it reads no rows at all, where the
    filtered subquery (which has no constraints) would be read.
-#}
{% macro tested_constraint_enforced(relation) -%}
    {%- set test = model.get('test_metadata') or {} -%}
    {%- set kwargs = test.get('kwargs') or {} -%}
    {%- set column = kwargs.get('column_name') -%}
    {%- if test.get('name') == 'unique' and column -%}
        {{ return(enforced_unique(relation, [column])) }}
    {%- elif test.get('name') == 'unique_combination_of_columns' and kwargs.get('combination_of_columns') -%}
        {{ return(enforced_unique(relation, kwargs['combination_of_columns'])) }}
    {%- elif test.get('name') == 'not_null' and column -%}
        {{ return(enforced_not_null(relation, column)) }}
    {%- endif -%}
    {{ return(false) }}
{%- endmacro %}

{#- dbt's filter of a generic test's rows (its `where` config), and the recent rows above. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set meta = tested_node_meta() -%}
    {%- set start = recent_rows_start(meta.get('recent_rows_as_of_run_date', false)) -%}
    {%- if start is not none and not where and tested_constraint_enforced(relation) -%}
        {{ return(relation) }}
    {%- elif start is not none and meta.get('recent_rows_column') -%}
        {%- do conditions.append(adapter.quote(meta['recent_rows_column']) ~ ' >= ' ~ start) -%}
    {%- elif start is not none and meta.get('recent_rows_parent') -%}
        {%- do conditions.append(recent_rows_of_parent(meta['recent_rows_parent'], start)) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}

{#- The rows whose parent row (`parent.model` joined on `parent.column`) is of day `start` or
    later, as a condition. The parent is found in the graph, not with ref(): a test's refs are
    fixed when it is parsed. The parents' keys are an array (`= any(array(...))`), not `in
    (select ...)`: the planner takes an array it has not seen for a few keys and looks the rows up
    by the index on their parent's key, where for the semi join it hashed the recent orders and
    read every line (at 100k customers, the order lines' uniqueness test 0.08 s against 0.8 s;
    docs/performance.md, "the order lines of the recent orders by key"). -#}
{% macro recent_rows_of_parent(parent, start) -%}
    {%- set node = model_node(parent.get('model')) -%}
    {%- set day_column = (node.config.get('meta', {}).get('recent_rows_column') if node) -%}
    {%- if not day_column or not parent.get('column') -%}
        {{ exceptions.raise_compiler_error(
            "meta recent_rows_parent must name a model with a recent_rows_column, and a column; got: "
            ~ parent) }}
    {%- endif -%}
    {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias) -%}
    {%- set column = adapter.quote(parent['column']) -%}
    {{ return(column ~ ' = any(array(select ' ~ column ~ ' from ' ~ relation ~ ' where '
        ~ adapter.quote(day_column) ~ ' >= ' ~ start ~ '))') }}
{%- endmacro %}
