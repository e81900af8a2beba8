{% macro generate_schema_name(custom_schema_name, node) -%}
    {# Schemas are named for their role (staging, candidate), not prefixed per target. #}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
