-- Grain: one row per sensor reading (measurement_id) that keeps every row-level rule of the contract
-- (contracts/environment/beach_sensor_readings.odcs.yaml); the others are in the quarantine model beside it.

with

beach_sensor_readings as (

    {{ passing_rows(ref('stg_environment__beach_sensor_readings')) }}

),

final as (

    select
        measurement_id,
        beach_name,
        measured_at,
        water_temperature,
        turbidity,
        transducer_depth,
        wave_height,
        wave_period,
        battery_life,
        measured_at_label

    from beach_sensor_readings

)

select * from final
