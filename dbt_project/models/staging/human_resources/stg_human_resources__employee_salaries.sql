-- Grain: one row per employee position (employee_id), from its latest delivery.
-- The HR system keeps pay as numbers; empty strings mark "not applicable" in text fields.

with

source as (

    select * from {{ source('raw_human_resources', 'employee_salaries') }}

),

typed as (

    select
        nullif(trim(employee_id), '')::bigint as employee_id,
        nullif(trim(name), '') as name,
        nullif(trim(job_title), '') as job_title,
        nullif(trim(department_name), '') as department_name,
        nullif(trim(full_or_part_time), '') as full_or_part_time,
        nullif(trim(salary_or_hourly), '') as salary_or_hourly,
        nullif(trim(typical_hours), '')::double precision as typical_hours,
        nullif(trim(annual_salary), '')::double precision as annual_salary,
        nullif(trim(hourly_rate), '')::double precision as hourly_rate,
        nullif(trim(updated_at), '')::timestamp as updated_at,

        ---------- load metadata
        _load_id,
        _loaded_at

    from source

),

final as (

    {{ latest_delivery('typed', 'employee_id') }}

)

select * from final
