{% test row_count_at_least(model, minimum) %}
{# ODCS `rowCount mustBeGreaterThan`: dbt core has no row-count test of its own. #}
select count(*) as row_count
from {{ model }}
having count(*) < {{ minimum }}
{% endtest %}
