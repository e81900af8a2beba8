{#
    Row-level contract rules. `meta.row_rules` is compiled from the contract
    (contracts/mapping.py): each rule has a SQL predicate that is true for a row breaking it,
    and a SQL expression saying why. A predicate that comes out NULL counts as broken, so a
    row is published only when every rule positively holds.
#}

{% macro _row_rules() -%}
    {{ return((config.get('meta') or {}).get('row_rules', [])) }}
{%- endmacro %}


{% macro passing_rows(relation) -%}
    {#- The rows of `relation` that break none of the contract's row-level rules. -#}
    {%- set rules = _row_rules() %}
    select * from {{ relation }}
    {%- if rules %}
    where not coalesce(
        {%- for rule in rules %}
        ({{ rule.violation }}){{ " or" if not loop.last }}
        {%- endfor %}
    , true)
    {%- endif %}
{%- endmacro %}


{% macro quarantined_rows(relation) -%}
    {#- The other rows, each once, with the rules it breaks and a reason per rule. -#}
    {%- set rules = _row_rules() %}
    with

    source as (

        select * from {{ relation }}

    ),

    checked as (

        select
            source.*,
            array_remove(array[
                {%- for rule in rules %}
                case when coalesce({{ rule.violation }}, true) then {{ "'" ~ rule.rule ~ "'" }} end,
                {%- endfor %}
                null
            ]::text[], null) as failed_rules,
            array_remove(array[
                {%- for rule in rules %}
                case when coalesce({{ rule.violation }}, true) then {{ rule.reason }} end,
                {%- endfor %}
                null
            ]::text[], null) as reasons

        from source

    ),

    final as (

        select * from checked
        where cardinality(failed_rules) > 0

    )

    select * from final
{%- endmacro %}
