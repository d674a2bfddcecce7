-- The raw data contract: what lands in the raw schema. Loaded with COPY by `offerrank generate`.
-- {schema} is replaced with the configured raw schema, quoted.
create table if not exists {schema}.customers (
    customer_id bigint primary key,
    business_type text not null,          -- horeca | trader | office | household
    region text not null,
    signup_date date not null
);

create table if not exists {schema}.products (
    product_id bigint primary key,
    category text not null,
    price_tier smallint not null check (price_tier between 1 and 3),
    is_own_brand boolean not null,
    is_fresh boolean not null,
    unit_price numeric(12, 2) not null,
    unit_cost numeric(12, 2) not null
);

create table if not exists {schema}.orders (
    order_id bigint primary key,
    customer_id bigint not null,
    ordered_at timestamptz not null
);

create table if not exists {schema}.order_items (
    order_id bigint not null,
    line_number integer not null,
    product_id bigint not null,
    quantity integer not null,
    unit_price numeric(12, 2) not null,   -- price actually paid per unit
    is_promo boolean not null,            -- bought under an offer or promotion
    primary key (order_id, line_number)
);

create table if not exists {schema}.offers (
    offer_id bigint primary key,
    product_id bigint,                    -- set for a product offer
    category text,                        -- set for a category offer; both null: whole store
    discount_pct numeric(5, 2) not null,  -- percent off, 0 < discount_pct < 100
    margin_impact numeric(6, 4) not null, -- share of the normal gross margin given up, 0..1
    starts_on date not null,
    ends_on date not null,                -- inclusive
    target_business_type text             -- null: every business type
);

create table if not exists {schema}.impressions (
    impression_id bigint primary key,
    customer_id bigint not null,
    offer_id bigint not null,
    shown_at timestamptz not null
);

create table if not exists {schema}.redemptions (
    redemption_id bigint primary key,
    customer_id bigint not null,
    offer_id bigint not null,
    redeemed_at timestamptz not null
);
