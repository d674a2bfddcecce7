select

    ---------- ids
    offer_id::bigint as offer_id,
    product_id::bigint as product_id,

    ---------- strings
    category::text as category,
    target_business_type::text as target_business_type,
    coalesce(discount_type, 'percent')::text as discount_type,

    ---------- numerics
    -- Depth is the share of the price given: percent off, or for a fixed reward the reward
    -- as a share of the minimum spend that earns it (null when there is no minimum).
    (case
        when coalesce(discount_type, 'percent') = 'percent' then discount_pct / 100
        else reward_amount / nullif(min_spend, 0)
    end)::numeric(7, 6) as discount_depth,
    reward_amount::numeric(12, 2) as reward_amount,
    min_spend::numeric(12, 2) as min_spend,
    margin_impact::numeric(6, 4) as margin_impact,

    ---------- dates
    starts_on::date as starts_on,
    ends_on::date as ends_on

from {{ source('raw', 'offers') }}
