{% test fresh_within(model, column_name, seconds) %}
{# ODCS SLA `latency` on an element: the newest value is at most `seconds` old. #}
select max({{ column_name }}) as newest
from {{ model }}
having max({{ column_name }}) < now() - interval '{{ seconds }} seconds'
    or max({{ column_name }}) is null
{% endtest %}
