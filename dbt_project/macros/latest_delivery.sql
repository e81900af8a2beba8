{% macro latest_delivery(relation, key) -%}
    {#-
        Each key's rows from its latest delivery (one ingest pass), counted in `_key_copies`.
        `key` is the key column, or a list of them for a composite key (in key order).
        A re-delivered record replaces its earlier version. Copies of one key within a
        single delivery are all kept, with `_key_copies` > 1, for the contract's built-in
        duplicate_key rule to quarantine: which copy is right cannot be known here.
        Rows without a key (or with a part of it missing) cannot be told apart either: all
        are kept.
        Raw rows carry only their batch's `_load_id`: the batch's uuid and delivery come
        from its load record (a batch from before deliveries is a delivery of its own).
    -#}
    {%- set keys = [key] if key is string else key -%}
    select * from (
        select
            landed.*,
            loads.batch_id as _batch_id,
            coalesce(loads.delivery_id, loads.batch_id) as _delivery_id,
            first_value(coalesce(loads.delivery_id, loads.batch_id)) over (
                partition by {% for k in keys %}landed.{{ k }}{{ ", " if not loop.last }}{% endfor %}
                order by landed._loaded_at desc
            ) as _latest_delivery,
            count(*) over (
                partition by {% for k in keys %}landed.{{ k }}, {% endfor -%}
                coalesce(loads.delivery_id, loads.batch_id)
            ) as _key_copies
        from {{ relation }} as landed
        inner join {{ source('hub', 'load_batches') }} as loads
            on loads.load_id = landed._load_id
    ) as ranked
    where _delivery_id = _latest_delivery
        {%- for k in keys %} or {{ k }} is null{% endfor %}
{%- endmacro %}
