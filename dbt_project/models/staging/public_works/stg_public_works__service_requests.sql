-- Grain: one row per service request (sr_number), in its latest delivered version (copies
-- of one key within a delivery, and rows without a key, are all kept for the contract).
-- Casts the raw text landing to the contract's types; values that do not cast fail the
-- build rather than being nulled, so a department's defects stay visible.

with

source as (

    select * from {{ source('raw_public_works', 'service_requests') }}

),

typed as (

    select
        ---------- ids
        nullif(trim(sr_number), '') as sr_number,

        ---------- timestamps (Los Angeles local time, no zone in the source)
        nullif(created_date, '')::timestamp as created_date,
        nullif(updated_date, '')::timestamp as updated_date,
        nullif(service_date, '')::date as service_date,
        nullif(closed_date, '')::timestamp as closed_date,

        ---------- request
        nullif(action_taken, '') as action_taken,
        nullif(owner, '') as owner,
        nullif(request_type, '') as request_type,
        nullif(status, '') as status,
        nullif(request_source, '') as request_source,
        nullif(mobile_os, '') as mobile_os,
        nullif(assign_to, '') as assign_to,

        ---------- booleans (Y/N in the source)
        {{ yes_no('anonymous') }} as anonymous,
        {{ yes_no('address_verified') }} as address_verified,
        {{ yes_no('approximate_address') }} as approximate_address,

        ---------- location (personal data)
        nullif(address, '') as address,
        nullif(house_number, '') as house_number,
        nullif(direction, '') as direction,
        nullif(street_name, '') as street_name,
        nullif(suffix, '') as suffix,
        nullif(zip_code, '') as zip_code,
        nullif(latitude, '')::double precision as latitude,
        nullif(longitude, '')::double precision as longitude,
        nullif(location, '') as location,

        ---------- areas
        nullif(tbm_page, '') as tbm_page,
        nullif(tbm_column, '') as tbm_column,
        nullif(tbm_row, '') as tbm_row,
        nullif(apc, '') as apc,
        nullif(cd, '')::integer as cd,
        nullif(cd_member, '') as cd_member,
        nullif(nc, '')::integer as nc,
        nullif(nc_name, '') as nc_name,
        nullif(police_precinct, '') as police_precinct,

        ---------- load metadata
        _load_id,
        _loaded_at

    from source

),

final as (

    {{ latest_delivery('typed', 'sr_number') }}

)

select * from final
