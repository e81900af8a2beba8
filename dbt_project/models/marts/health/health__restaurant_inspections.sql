-- Grain: one row per inspection finding (finding_id) that keeps every row-level rule of the
-- contract (contracts/health/restaurant_inspections.odcs.yaml); the others are in the
-- quarantine model beside it.

with

restaurant_inspections as (

    {{ passing_rows(ref('stg_health__restaurant_inspections')) }}

),

final as (

    select
        finding_id,
        business_id,
        business_name,
        business_address,
        business_postal_code,
        business_latitude,
        business_longitude,
        business_location,
        business_phone_number,
        inspection_id,
        inspection_date,
        inspection_score,
        violation_id,
        violation_description,
        risk_category

    from restaurant_inspections

)

select * from final
