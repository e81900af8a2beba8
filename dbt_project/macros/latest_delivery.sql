{% macro latest_delivery(relation, key) -%}
    {#-
        Each key's rows from its latest delivery (one ingest pass), counted in `_key_copies`.
        A re-delivered record replaces its earlier version. Copies of one key within a
        single delivery are all kept, with `_key_copies` > 1, for the contract's built-in
        duplicate_key rule to quarantine: which copy is right cannot be known here.
        Rows without a key cannot be told apart either: all are kept.
    -#}
    select * from (
        select
            *,
            first_value(coalesce(_delivery_id, _batch_id)) over (
                partition by {{ key }}
                order by _loaded_at desc
            ) as _latest_delivery,
            count(*) over (
                partition by {{ key }}, coalesce(_delivery_id, _batch_id)
            ) as _key_copies
        from {{ relation }}
    ) as ranked
    where coalesce(_delivery_id, _batch_id) = _latest_delivery or {{ key }} is null
{%- endmacro %}
