{% test unique_combination(model, columns) %}
{# A composite primary key (ODCS primaryKeyPosition): no two rows share all its columns.
   Rows with a null part are left to the not_null tests, as dbt's own `unique` does. #}
select {{ columns | join(', ') }}, count(*) as copies
from {{ model }}
where {% for column in columns %}{{ column }} is not null{{ " and " if not loop.last }}{% endfor %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
