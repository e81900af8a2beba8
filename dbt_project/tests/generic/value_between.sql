{% test value_between(model, column_name, minimum, maximum) %}
{# ODCS `invalidValues` with arguments minimum/maximum: non-null values lie in the range. #}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ minimum }} or {{ column_name }} > {{ maximum }}
{% endtest %}
