-- Grain: one row per sensor reading (measurement_id), from its latest delivery (a message
-- delivered again after a crash replaces its earlier copy). Sentinel readings such as
-- -99999.992 are kept as numbers for the contract's range rules to quarantine.

with

source as (

    select * from {{ source('raw_environment', 'beach_sensor_readings') }}

),

typed as (

    select
        nullif(trim(measurement_id), '') as measurement_id,
        nullif(trim(beach_name), '') as beach_name,
        to_timestamp(nullif(trim(measured_at), ''), 'MM/DD/YYYY HH12:MI:SS AM')::timestamp
            as measured_at,
        nullif(trim(water_temperature), '')::double precision as water_temperature,
        nullif(trim(turbidity), '')::double precision as turbidity,
        nullif(trim(transducer_depth), '')::double precision as transducer_depth,
        nullif(trim(wave_height), '')::double precision as wave_height,
        nullif(trim(wave_period), '')::double precision as wave_period,
        nullif(trim(battery_life), '')::double precision as battery_life,
        nullif(trim(measured_at_label), '') as measured_at_label,

        ---------- load metadata
        _load_id,
        _loaded_at

    from source

),

final as (

    {{ latest_delivery('typed', 'measurement_id') }}

)

select * from final
