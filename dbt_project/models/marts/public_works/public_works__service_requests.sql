-- Grain: one row per service request (sr_number) that keeps every row-level rule of the
-- contract; the others are in the quarantine model beside this one.
-- The shared dataset's shape; its columns, types, constraints and tests are compiled from
-- contracts/public_works/service_requests.odcs.yaml into the YAML beside this file.

with

service_requests as (

    {{ passing_rows(ref('stg_public_works__service_requests')) }}

),

final as (

    select
        sr_number,
        created_date,
        updated_date,
        action_taken,
        owner,
        request_type,
        status,
        request_source,
        mobile_os,
        anonymous,
        assign_to,
        service_date,
        closed_date,
        address_verified,
        approximate_address,
        address,
        house_number,
        direction,
        street_name,
        suffix,
        zip_code,
        latitude,
        longitude,
        location,
        tbm_page,
        tbm_column,
        tbm_row,
        apc,
        cd,
        cd_member,
        nc,
        nc_name,
        police_precinct

    from service_requests

)

select * from final
