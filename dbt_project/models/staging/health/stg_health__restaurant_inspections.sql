-- Grain: one row per inspection finding (finding_id), from its latest delivery. A clean
-- inspection's finding is keyed <inspection_id>_none: the source leaves violation_id
-- empty for it, and keeps it empty here.

with

source as (

    select * from {{ source('raw_health', 'restaurant_inspections') }}

),

typed as (

    select
        coalesce(nullif(trim(finding_id), ''), nullif(trim(inspection_id), '') || '_none')
            as finding_id,
        nullif(trim(business_id), '')::integer as business_id,
        nullif(trim(business_name), '') as business_name,
        nullif(trim(business_address), '') as business_address,
        nullif(trim(business_postal_code), '') as business_postal_code,
        nullif(trim(business_latitude), '')::double precision as business_latitude,
        nullif(trim(business_longitude), '')::double precision as business_longitude,
        nullif(trim(business_location), '') as business_location,
        nullif(trim(business_phone_number), '') as business_phone_number,
        nullif(trim(inspection_id), '') as inspection_id,
        to_date(nullif(trim(inspection_date), ''), 'MM/DD/YYYY') as inspection_date,
        nullif(trim(inspection_score), '')::integer as inspection_score,
        nullif(trim(violation_id), '') as violation_id,
        nullif(trim(violation_description), '') as violation_description,
        nullif(trim(risk_category), '') as risk_category,

        ---------- load metadata
        _load_id,
        _loaded_at

    from source

),

final as (

    {{ latest_delivery('typed', 'finding_id') }}

)

select * from final
