"""What the API serves comes from the registry: the newest version of each dataset, retired
ones with their date, and a registered contract that no longer lints left out, loudly."""

from __future__ import annotations

import logging

import psycopg
import pytest
import yaml

from api.catalog import Catalog
from hub.catalog import in_force, retired_on
from tests.conftest import REPO, own_warehouse

CONTRACT = (REPO / "tests" / "data" / "every_rule.odcs.yaml").read_text()
INSERT = ("insert into hub.contracts (dataset, version, major, department, source_text,"
          " checksum, registered_by, status, registered_at)"
          " values (%s, %s, %s, 'environment', %s, 'x', 'test', %s, %s)")


def _version(version: str, status: str = "active") -> str:
    return yaml.safe_dump(dict(yaml.safe_load(CONTRACT), version=version, status=status))


@pytest.fixture
def registry(server_url):
    with own_warehouse(server_url, "hub_test_catalog") as url:
        with psycopg.connect(url) as conn:
            for version, status, day in [("1.0.0", "active", "2024-01-01"),
                                         ("1.10.0", "retired", "2024-02-01"),
                                         ("1.2.0", "active", "2024-01-15"),
                                         ("1.11.0", "retired", "2024-03-01")]:
                conn.execute(INSERT, ["environment.readings", version, 1,
                                      _version(version, status), status, day])
            conn.execute(INSERT, ["environment.broken", "1.0.0", 1,
                                  "description: {{ oops }}\n", "active", "2024-01-01"])
        yield url


def test_the_newest_version_decides_and_a_retirement_is_dated_from_its_first(registry):
    with psycopg.connect(registry) as conn:
        assert str(retired_on(conn, "environment.readings")) == "2024-02-01"  # 1.10 > 1.2
        catalog = Catalog({})
        catalog.load(conn)
    assert catalog.contracts["environment.readings"].version == "1.11.0"
    assert str(catalog.retired["environment.readings"]) == "2024-02-01"


def test_a_registered_contract_that_no_longer_lints_is_left_out_with_a_warning(registry,
                                                                              caplog):
    with psycopg.connect(registry) as conn, caplog.at_level(logging.WARNING, "api.catalog"):
        Catalog({}).load(conn)
        with pytest.raises(ValueError, match="registry environment.broken 1.0.0"):
            in_force(conn)  # `hub run` stops, naming the registered version to fix
    assert "registered contract environment.broken 1.0.0 is not served" in caplog.text
