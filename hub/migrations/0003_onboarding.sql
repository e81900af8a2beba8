-- Self-service onboarding: contracts can retire their dataset, and staging models generated
-- from contracts cast raw text without failing on a value that does not cast.

-- The ODCS `status` of each registered version: the newest version's status is the
-- dataset's. `retired` stops its pipeline and its rows route answers 410.
alter table hub.contracts add column if not exists status text not null default 'active';

-- hub.try_cast(value, null::<type>): the value cast to the type of the second argument, or
-- null when it does not cast (the dbt macro try_cast uses it before PostgreSQL 16, whose
-- pg_input_is_valid does the same inline). The row is then quarantined by the contract's
-- type(<column>) rule. The exception block costs a subtransaction per value.
create or replace function hub.try_cast(value text, target anyelement)
returns anyelement language plpgsql stable as $body$
begin
    target := value;  -- plpgsql assigns through the type's input function
    return target;
exception when others then
    return null;
end $body$;

-- hub.try_cast(value, null::<date|timestamp|time type>, template, shape): a value in a
-- contract's date format (logicalTypeOptions.format, translated by contracts/dates.py) read
-- with to_date / to_timestamp, or null. `shape` is the anchored regular expression of the
-- format: PostgreSQL's template parser alone is lenient (it ignores trailing text).
create or replace function hub.try_cast(value text, target anyelement, template text,
                                        shape text)
returns anyelement language plpgsql stable as $body$
begin
    if value is null or value !~ shape then
        return null;
    end if;
    if pg_typeof(target) = 'date'::regtype then
        target := to_date(value, template);
    else
        target := to_timestamp(value, template);  -- to timestamp or time by assignment
    end if;
    return target;
exception when others then  -- out of range: 2024/02/30, 25:00
    return null;
end $body$;
