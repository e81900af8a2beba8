-- Grain: one row per counted hour (counted_at), from its latest delivery; an hour delivered
-- twice in one delivery (a repeated daylight-saving hour) keeps both copies for the
-- contract to quarantine. The API serves every value as a JSON string: cast here.

with

source as (

    select * from {{ source('raw_transport', 'bike_counts') }}

),

typed as (

    select
        nullif(trim(counted_at), '')::timestamp as counted_at,
        nullif(trim(east), '')::integer as east,
        nullif(trim(west), '')::integer as west,
        nullif(trim(total), '')::integer as total,

        ---------- load metadata
        _load_id,
        _loaded_at

    from source

),

final as (

    {{ latest_delivery('typed', 'counted_at') }}

)

select * from final
