-- Grain: one row per service request whose latest version breaks a row-level rule of the
-- contract, with the rules it breaks (`failed_rules`) and why (`reasons`). Published to
-- quarantine.public_works__service_requests together with the mart, never dropped.

{{ quarantined_rows(ref('stg_public_works__service_requests')) }}
