-- Grain: one row per record of transport.bike_counts whose latest delivery breaks a row-level
-- rule of the contract, with the rules it breaks (failed_rules) and why (reasons).

{{ quarantined_rows(ref('stg_transport__bike_counts')) }}
