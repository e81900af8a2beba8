"""Date formats: ODCS `logicalTypeOptions.format` (JDK DateTimeFormatter patterns) become
PostgreSQL templates and value shapes; what cannot be translated is refused at lint; and the
warehouse reads values through them (hub.try_cast), null for a value that does not fit."""

from __future__ import annotations

import re
from datetime import date, datetime, time

import psycopg
import pytest
import yaml

from contracts import ContractError, load_contract_text
from contracts.dates import FormatError, translate
from tests.conftest import own_warehouse


@pytest.mark.parametrize("pattern, template, shape", [
    ("yyyy/MM/dd", "YYYY/MM/DD", r"^\d{4}/\d{2}/\d{2}$"),
    ("dd/MM/yyyy", "DD/MM/YYYY", r"^\d{2}/\d{2}/\d{4}$"),
    ("MM/dd/yyyy hh:mm:ss a", "MM/DD/YYYY HH12:MI:SS AM",
     r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2} [AaPp][Mm]$"),
    ("d.M.yy", "DD.MM.YY", r"^\d{1,2}\.\d{1,2}\.\d{2}$"),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSxxx", 'YYYY-MM-DD"T"HH24:MI:SS.FF3TZH:TZM',
     r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$"),
    ("yyyy-MM-dd HH:mm:ssZ", "YYYY-MM-DD HH24:MI:SSTZHTZM",
     r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{4}$"),
    ("EEE, dd MMM yyyy", "Dy, DD Mon YYYY", r"^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4}$"),
    ("dd MMMM yyyy", "DD Month YYYY", r"^\d{2} [A-Za-z]+ \d{4}$"),
    ("yyyyMMdd", "YYYYMMDD", r"^\d{4}\d{2}\d{2}$"),
    ("h 'o''clock' a", "HH12 \"o'clock\" AM", r"^\d{1,2} o'clock [AaPp][Mm]$"),
    ("HH:mm", "HH24:MI", r"^\d{2}:\d{2}$"),
    ("yyyy-DDD", "YYYY-DDD", r"^\d{4}-\d{3}$"),
])
def test_jdk_patterns_become_postgresql_templates_and_shapes(pattern, template, shape):
    found = translate(pattern)
    assert (found.pg, found.shape) == (template, shape)


@pytest.mark.parametrize("pattern, message", [
    ("yyyy-QQ", "pattern letter 'Q' (quarter) is not supported"),
    ("yyyy-MM-dd'T'HH:mm:ssX", "pattern letter 'X' (offset with Z for zero) is not supported"),
    ("kk:mm", "pattern letter 'k' (hour 1-24) is not supported"),
    ("MMMMM yyyy", "'MMMMM' (5 letters M) is not supported"),
    ("yyyy-MM-dd[ HH:mm]", "'[' (optional sections and reserved characters) is not supported"),
    ("yyyy-MM-dd'T", "has a quote (') that is never closed"),
    ('yyyy"MM', "a double quote or backslash in the pattern is not supported"),
    ("  ", "is empty"),
])
def test_untranslatable_patterns_are_refused_saying_what_is_read(pattern, message):
    with pytest.raises(FormatError, match=re.escape(message)) as caught:
        translate(pattern)
    assert "write" in str(caught.value)


CONTRACT = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "dates-test", "version": "1.0.0",
    "domain": "public_works", "team": {"name": "public-works-data"},
    "schema": [{"name": "readings", "properties": [
        {"name": "reading_id", "logicalType": "integer", "primaryKey": True},
        {"name": "taken_on", "logicalType": "date",
         "logicalTypeOptions": {"format": "yyyy-QQ"}},
        {"name": "amount", "logicalType": "number", "logicalTypeOptions": {"format": "f32"}},
    ]}],
}


def test_lint_refuses_an_unsupported_letter_naming_the_field():
    with pytest.raises(ContractError) as caught:
        load_contract_text(yaml.safe_dump(CONTRACT), "dates.odcs.yaml")
    [(path, message)] = caught.value.problems  # f32 on a number column is not a date format
    assert path == "schema.0.properties.1.logicalTypeOptions.format"
    assert message.startswith("'yyyy-QQ': pattern letter 'Q' (quarter) is not supported; "
                              "write y (year), M (month)")


def test_lint_keeps_a_good_format_on_the_column():
    document = yaml.safe_load(yaml.safe_dump(CONTRACT))
    document["schema"][0]["properties"][1]["logicalTypeOptions"]["format"] = "dd/MM/yyyy"
    contract = load_contract_text(yaml.safe_dump(document), "dates.odcs.yaml")
    assert contract.column("taken_on").date_format == "dd/MM/yyyy"
    assert contract.column("amount").date_format is None


# (pattern, target type, value, what the warehouse reads; None: it does not fit)
READS = [
    ("dd/MM/yyyy", "date", "05/01/2024", date(2024, 1, 5)),
    ("dd/MM/yyyy", "date", "31/02/2024", None),  # no such day
    ("dd/MM/yyyy", "date", "2024-01-05", None),  # ISO, not the contract's format
    ("dd/MM/yyyy", "date", "05/01/2024 extra", None),  # PostgreSQL alone ignores the rest
    ("dd/MM/yyyy", "date", "5/1/2024", None),  # dd is two digits
    ("d/M/yyyy", "date", "5/1/2024", date(2024, 1, 5)),
    ("MM/dd/yyyy hh:mm:ss a", "timestamp", "01/05/2024 07:15:00 PM",
     datetime(2024, 1, 5, 19, 15)),
    ("MM/dd/yyyy hh:mm:ss a", "timestamp", "13/45/2024 07:15:00 AM", None),
    ("yyyy-MM-dd'T'HH:mm:ssxxx", "timestamptz", "2024-01-05T10:00:00+02:00",
     datetime.fromisoformat("2024-01-05T08:00:00+00:00")),
    ("HH:mm", "time", "23:59", time(23, 59)),
    ("HH:mm", "time", "25:00", None),
]


@pytest.fixture(scope="module")
def scratch(server_url):
    with own_warehouse(server_url, "hub_test_dates") as url:
        yield url


@pytest.mark.parametrize("pattern, kind, value, expected", READS)
def test_the_warehouse_reads_values_through_the_translation(scratch, pattern, kind, value,
                                                            expected):
    form = translate(pattern)
    with psycopg.connect(scratch) as conn:
        conn.execute("set timezone = 'UTC'")
        [found] = conn.execute(f"select hub.try_cast(%s, null::{kind}, %s, %s)",
                               [value, form.pg, form.shape]).fetchone()
    assert found == expected


@pytest.mark.parametrize("kind, value, expected", [
    ("double precision", "3.5", 3.5), ("double precision", "n/a", None),
    ("bigint", "12", 12), ("bigint", "1.5", None), ("boolean", "Y", True),
    ("boolean", "maybe", None), ("date", "2024-01-05", date(2024, 1, 5)),
    ("date", "2024-13-05", None), ("timestamp", "2024-01-05T10:11:12",
                                   datetime(2024, 1, 5, 10, 11, 12)),
])
def test_try_cast_without_a_format_is_the_type_s_own_input_or_null(scratch, kind, value,
                                                                   expected):
    with psycopg.connect(scratch) as conn:
        [found] = conn.execute(f"select hub.try_cast(%s, null::{kind})", [value]).fetchone()
    assert found == expected
