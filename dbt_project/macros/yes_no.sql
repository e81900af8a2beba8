{% macro yes_no(column) -%}
    {# Y/N text to boolean. Anything else fails the cast, so odd values are not hidden. #}
    case
        when nullif(trim({{ column }}), '') is null then null
        when upper(trim({{ column }})) = 'Y' then true
        when upper(trim({{ column }})) = 'N' then false
        else ({{ column }})::boolean
    end
{%- endmacro %}
