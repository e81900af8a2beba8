-- Grain: one row per record of environment.beach_sensor_readings whose latest delivery breaks a row-level
-- rule of the contract, with the rules it breaks (failed_rules) and why (reasons).

{{ quarantined_rows(ref('stg_environment__beach_sensor_readings')) }}
