{% macro try_cast(column, type) -%}
    {#-
        The raw text of `column`, trimmed, cast to `type`; null when it is empty or does not
        cast (staging models generated from contracts, contracts/dbt_models.py: the row is
        then quarantined by the contract's type(<column>) rule, not the whole build failed).
        PostgreSQL 16 and later ask pg_input_is_valid inline. Before 16, hub.try_cast
        (hub/migrations/0003_onboarding.sql) catches the cast's error instead, a
        subtransaction per value: on 16 that function took 2.4 times as long as the inline
        check over 100,000 values.
    -#}
    {%- set text = "nullif(trim(" ~ adapter.quote(column) ~ "), '')" -%}
    {%- if _validates_input() -%}
        case when pg_input_is_valid({{ text }}, '{{ type }}') then ({{ text }})::{{ type }} end
    {%- else -%}
        hub.try_cast({{ text }}, null::{{ type }})
    {%- endif -%}
{%- endmacro %}


{% macro _validates_input() -%}
    {#- Whether the warehouse has pg_input_is_valid (PostgreSQL 16+); asked at compile time. -#}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query("select current_setting('server_version_num')::int >= 160000") -%}
    {{ return(found.columns[0].values()[0]) }}
{%- endmacro %}
