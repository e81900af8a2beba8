-- Grain: one row per counted hour (counted_at) that keeps every row-level rule of the contract
-- (contracts/transport/bike_counts.odcs.yaml); the others are in the quarantine model beside it.

with

bike_counts as (

    {{ passing_rows(ref('stg_transport__bike_counts')) }}

),

final as (

    select
        counted_at,
        east,
        west,
        total

    from bike_counts

)

select * from final
