-- Grain: one row per record of human_resources.employee_salaries whose latest delivery
-- breaks a row-level rule of the contract, with the rules it breaks (failed_rules) and why
-- (reasons).

{{ quarantined_rows(ref('stg_human_resources__employee_salaries')) }}
