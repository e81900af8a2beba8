-- Grain: one row per record of health.restaurant_inspections whose latest delivery breaks
-- a row-level rule of the contract, with the rules it breaks (failed_rules) and why
-- (reasons).

{{ quarantined_rows(ref('stg_health__restaurant_inspections')) }}
