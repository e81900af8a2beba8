{% test matches_pattern(model, column_name, pattern) %}
{# ODCS `invalidValues` with arguments.pattern: non-null values must match the regex. #}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }}::text !~ '{{ pattern | replace("'", "''") }}'
{% endtest %}
