-- Grain: one row per record of social_services.shelter_census whose latest delivery breaks a row-level
-- rule of the contract, with the rules it breaks (failed_rules) and why (reasons).

{{ quarantined_rows(ref('stg_social_services__shelter_census')) }}
