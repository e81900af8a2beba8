"""The access-request cycle, from request to approval to expiry, every step audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from hub import clients, clock
from tests.conftest import bearer, count

ROWS = "/datasets/public_works.service_requests/rows"
ASK = {"dataset": "public_works.service_requests",
       "columns": ["sr_number", "status", "address"],
       "purpose": "Inspect food trucks near reported dumping sites", "duration_days": 7}


@pytest.fixture
def people(app_client, url):
    """A fresh requester (health) and a fresh admin (public works) for each test."""
    made = {}
    with psycopg.connect(url) as conn:
        for who, role in (("requester", "health_inspector"),
                          ("admin", "public_works_data_admin"), ("analyst", "transport_analyst")):
            made[who] = clients.add_client(conn, name=f"{who}-{uuid.uuid4().hex[:6]}", role=role)
    for who, (client, secret) in made.items():  # committed: now they can get tokens
        token = app_client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client.client_id, secret)).json()["access_token"]
        made[who] = (client.client_id, bearer(token))
    return made


def ask(app_client, people, who="requester", **changes):
    return app_client.post("/access-requests", json=ASK | changes, headers=people[who][1])


def test_request_approve_read_and_expire(app_client, people, url):
    requester, admin = people["requester"][1], people["admin"][1]
    assert app_client.get(ROWS, headers=requester).status_code == 403
    created = ask(app_client, people)
    assert created.status_code == 201 and created.json()["status"] == "pending"
    request_id = created.json()["request_id"]
    assert app_client.get(ROWS, headers=requester).status_code == 403  # pending is not a grant
    listed = app_client.get("/access-requests", headers=requester).json()["access_requests"]
    assert [r["request_id"] for r in listed] == [request_id]

    approved = app_client.post(f"/access-requests/{request_id}/approve", headers=admin)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    body = app_client.get(ROWS, params={"limit": 5}, headers=requester).json()
    assert body["columns"] == ["sr_number", "status", "address"]
    assert {r["address"] for r in body["rows"]} <= {"[redacted]", None}  # personal: masked

    with psycopg.connect(url) as conn:  # seven days pass
        conn.execute("update hub.access_requests set valid_until = %s"
                     " where request_id = %s", [clock.today() - timedelta(days=1), request_id])
    app_client.app.state.hub.request_grants.invalidate()
    assert app_client.get(ROWS, headers=requester).status_code == 403

    kinds = "select kind from audit.events where detail->>'request_id' = %s order by event_id"
    with psycopg.connect(url) as conn:
        steps = [k for (k,) in conn.execute(kinds, [request_id])]
    assert steps == ["access_request.created", "access_request.approved"]
    assert count(url, "select count(*) from audit.events where kind = 'data.read'"
                      " and grant_id = %s", [f"request-{request_id}"]) == 1


def test_nobody_approves_their_own_request(app_client, people):
    request_id = ask(app_client, people, who="admin").json()["request_id"]
    response = app_client.post(f"/access-requests/{request_id}/approve",
                               headers=people["admin"][1])
    assert response.status_code == 403 and "their own" in response.json()["error_description"]


def test_only_admins_decide(app_client, people):
    request_id = ask(app_client, people).json()["request_id"]
    response = app_client.post(f"/access-requests/{request_id}/approve",
                               headers=people["analyst"][1])
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_rejected_request_grants_nothing_and_is_decided_once(app_client, people, url):
    request_id = ask(app_client, people).json()["request_id"]
    admin = people["admin"][1]
    why = "The purpose does not need street addresses."
    for body, says in ((None, "reason: say why in the body"),
                       ({"reason": "no"}, "at least 5 characters")):
        unsaid = app_client.post(f"/access-requests/{request_id}/reject", json=body,
                                 headers=admin)
        assert unsaid.status_code == 400 and says in unsaid.json()["error_description"]
    done = app_client.post(f"/access-requests/{request_id}/reject", json={"reason": why},
                           headers=admin).json()
    assert done["status"] == "rejected" and done["decision_reason"] == why
    mine = app_client.get("/access-requests", headers=people["requester"][1]).json()
    [seen] = [r for r in mine["access_requests"] if r["request_id"] == request_id]
    assert seen["decision_reason"] == why  # the requester is told why
    assert count(url, "select count(*) from audit.events where kind = 'access_request.rejected'"
                 " and detail->>'request_id' = %s and detail->>'reason' = %s",
                 [request_id, why]) == 1
    assert app_client.get(ROWS, headers=people["requester"][1]).status_code == 403
    again = app_client.post(f"/access-requests/{request_id}/approve", headers=admin)
    assert again.status_code == 409 and "already rejected" in again.json()["error_description"]


def test_unknown_request_is_404(app_client, people):
    response = app_client.post(f"/access-requests/{uuid.uuid4()}/approve",
                               headers=people["admin"][1])
    assert response.status_code == 404


@pytest.mark.parametrize("changes, fragment", [
    ({"dataset": "health.nope"}, "unknown dataset 'health.nope'"),
    ({"columns": ["sr_number", "ssn"]}, "has no column 'ssn'"),
    ({"duration_days": 0}, "duration_days"),
    ({"duration_days": 400}, "duration_days"),
    ({"purpose": "because"}, "purpose"),
])
def test_bad_requests_are_400(app_client, people, changes, fragment):
    response = ask(app_client, people, **changes)
    assert response.status_code == 400 and fragment in response.json()["error_description"]
