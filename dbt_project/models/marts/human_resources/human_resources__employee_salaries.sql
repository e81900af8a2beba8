-- Grain: one row per employee position (employee_id) that keeps every row-level rule of the
-- contract (contracts/human_resources/employee_salaries.odcs.yaml); the others are in the
-- quarantine model beside it.

with

employee_salaries as (

    {{ passing_rows(ref('stg_human_resources__employee_salaries')) }}

),

final as (

    select
        employee_id,
        name,
        job_title,
        department_name,
        full_or_part_time,
        salary_or_hourly,
        typical_hours,
        annual_salary,
        hourly_rate,
        updated_at

    from employee_salaries

)

select * from final
