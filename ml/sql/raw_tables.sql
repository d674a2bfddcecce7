-- The raw data contract: generated from ml/contract.py, do not edit by hand.
-- Regenerate with `python -m ml.contract > ml/sql/raw_tables.sql`.
-- {schema} is replaced with the configured raw schema, quoted.
create table if not exists {schema}.customers (
    customer_id bigint not null,
    business_type text,
    region text,
    signup_date date,
    primary key (customer_id)
);

create table if not exists {schema}.products (
    product_id bigint not null,
    department text,
    category text not null,
    price_tier smallint check (price_tier >= 1 and price_tier <= 3),
    is_own_brand boolean,
    is_fresh boolean,
    unit_price numeric(12, 2) not null check (unit_price > 0),
    unit_cost numeric(12, 2) check (unit_cost >= 0),
    primary key (product_id)
);

create table if not exists {schema}.orders (
    order_id bigint not null,
    customer_id bigint not null,
    ordered_at timestamptz not null,
    primary key (order_id)
);
create index if not exists orders_ordered_at_utc_date_idx
    on {schema}.orders (((ordered_at at time zone 'UTC')::date));

create table if not exists {schema}.order_items (
    order_id bigint not null,
    line_number integer not null,
    product_id bigint not null,
    quantity integer not null check (quantity > 0),
    unit_price numeric(12, 2) not null check (unit_price >= 0),
    is_promo boolean,
    primary key (order_id, line_number)
);

create table if not exists {schema}.offers (
    offer_id bigint not null,
    product_id bigint,
    category text,
    discount_type text check (discount_type in ('percent', 'fixed')),
    discount_pct numeric(5, 2) check (discount_pct > 0 and discount_pct < 100) check (coalesce(discount_type, 'percent') <> 'percent' or discount_pct is not null),
    reward_amount numeric(12, 2) check (reward_amount > 0) check (discount_type <> 'fixed' or reward_amount is not null),
    min_spend numeric(12, 2) check (min_spend >= 0),
    margin_impact numeric(6, 4) check (margin_impact >= 0 and margin_impact <= 1),
    starts_on date not null,
    ends_on date not null check (ends_on >= starts_on),
    target_business_type text,
    primary key (offer_id)
);

create table if not exists {schema}.impressions (
    impression_id bigint not null,
    customer_id bigint not null,
    offer_id bigint not null,
    shown_at timestamptz not null,
    propensity double precision check (propensity > 0 and propensity <= 1),
    primary key (impression_id)
);
create index if not exists impressions_shown_at_utc_date_idx
    on {schema}.impressions (((shown_at at time zone 'UTC')::date));

create table if not exists {schema}.redemptions (
    redemption_id bigint not null,
    customer_id bigint not null,
    offer_id bigint not null,
    redeemed_at timestamptz not null,
    primary key (redemption_id)
);
create index if not exists redemptions_redeemed_at_utc_date_idx
    on {schema}.redemptions (((redeemed_at at time zone 'UTC')::date));

create table if not exists {schema}.interaction_events (
    event_id bigint not null,
    impression_id bigint not null,
    event_type text not null check (event_type in ('view', 'click', 'dismiss')),
    event_at timestamptz not null,
    primary key (event_id)
);
create index if not exists interaction_events_event_at_utc_date_idx
    on {schema}.interaction_events (((event_at at time zone 'UTC')::date));
