"""The API's response bodies, as /openapi.json documents them.

Every route but the rows page and the export returns one of these, and FastAPI validates
and serialises it (the route's response model). The rows page is built by hand with
orjson and the export is streamed (api/rows.py, api/export.py): their models only
document the body. The error body of every route is api.errors.ErrorBody.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.onboarding_models import NextPublish, OnboardingState

# ---------- OAuth2 (RFC 6749, 7009, 7662, 8414, 7517)


class TokenResponse(BaseModel):
    """An access token (RFC 6749 5.1): a signed JWT to send as `Authorization: Bearer`."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds until the token expires")
    scope: str = Field(description="the granted scopes, space-separated")


class Revoked(BaseModel):
    """RFC 7009 2.2: the token is revoked, or was never valid (nothing to revoke)."""


class Introspection(BaseModel):
    """RFC 7662 2.2: whether the token is active and, if so, its claims."""

    # Claims beyond these are passed through as the token carries them.
    model_config = ConfigDict(extra="allow")

    active: bool
    token_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    role: str | None = None
    department: str | None = None
    iss: str | None = None
    aud: str | list[str] | None = None
    iat: int | None = None
    nbf: int | None = None
    exp: int | None = None
    jti: str | None = None
    attributes: dict[str, str] | None = Field(
        None, description="the caller's attributes, which grants' row filters compare rows with")


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str
    jwks_uri: str
    revocation_endpoint: str
    introspection_endpoint: str
    grant_types_supported: list[str]
    code_challenge_methods_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    scopes_supported: list[str]
    response_types_supported: list[str]


class PublicKey(BaseModel):
    """A public JSON Web Key (RFC 7517) that verifies access tokens."""

    model_config = ConfigDict(extra="allow")  # whatever else the key's JWK carries

    kty: str
    kid: str
    crv: str | None = None
    x: str | None = None
    y: str | None = None


class PublicKeys(BaseModel):
    """A JWK Set: the current signing key and retired ones whose tokens may still be live."""

    keys: list[PublicKey]


# ---------- datasets


class SchemaColumn(BaseModel):
    name: str
    type: str = Field(description="the contract's logical type")
    personal: bool


class Quality(BaseModel):
    """The dataset's latest publication check."""

    last_check_passed: bool
    checked_at: datetime
    # Null for a caller whose grant filters rows: these count every row.
    rows_published: int | None
    rows_quarantined: int | None


class DatasetSummary(BaseModel):
    id: str
    status: str = Field(description="the contract's ODCS status; retired: its rows answer 410")
    title: str
    owner: str
    department: str
    description: str
    grain: str
    contract_version: str
    published_version: int | None = Field(description="null until first published")
    published_at: datetime | None
    quality: Quality | None
    # "schema" would shadow a BaseModel attribute: the field is named otherwise.
    columns_schema: list[SchemaColumn] = Field(alias="schema")


class Catalog(BaseModel):
    """The datasets the caller may read."""

    datasets: list[DatasetSummary]


class VisibleColumn(BaseModel):
    name: str
    mask: str | None = Field(description="how the column is masked for you; null: as stored")


class YourAccess(BaseModel):
    """How the caller reads the dataset: explained, in words."""

    grant: str = Field(description="the id of the grant that decides")
    purpose: str
    row_filter: str = Field(description="the rows the caller sees, in words (every row, or "
                            "the grant's filter with the caller's attribute values)")


class DatasetDetail(DatasetSummary):
    columns: list[VisibleColumn]
    access: YourAccess
    row_schema: dict[str, Any] = Field(description="JSON Schema of one row, before masking")


class ValidationReport(BaseModel):
    run_id: uuid.UUID
    contract_version: str
    passed: bool
    # Null for a caller whose grant filters rows (as are the rules' counts and samples).
    rows_in: int | None
    rows_published: int | None
    rows_quarantined: int | None
    rules: list[dict[str, Any]] = Field(description="every rule: held or not, and what was seen")
    created_at: datetime


class ValidationReports(BaseModel):
    dataset: str
    reports: list[ValidationReport]


class RowsPage(BaseModel):
    """A page of rows, masked as the caller's grant says."""

    dataset: str
    version: int = Field(description="the published version the rows come from")
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="one object per row, keyed by column "
                                       "(GET /datasets/{id} gives its row_schema)")
    next_cursor: str | None = Field(description="pass as cursor= for the next page; "
                                    "null on the last page or with order=")


# ---------- access requests


class AccessRequestCreated(BaseModel):
    request_id: uuid.UUID
    status: Literal["pending"]


class AccessRequest(BaseModel):
    request_id: uuid.UUID
    dataset: str
    client_id: str
    role: str
    department: str
    columns: list[str] | None = Field(description="null: every column")
    purpose: str
    duration_days: int
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None = Field(None, description="why it was rejected, in the "
                                        "data admin's words")
    valid_from: date | None
    valid_until: date | None
    created_at: datetime


class AccessRequests(BaseModel):
    access_requests: list[AccessRequest]


# ---------- contracts and notifications


class Registration(BaseModel):
    """The version registered, and what happens next."""

    dataset: str
    version: str
    status: Literal["registered", "unchanged"]
    lint_warnings: list[str] = Field(description="the contract lints, but read these")
    compared_with: str | None = Field(description="the version in force it was checked "
                                      "against (none for a first version)")
    verdict: str = Field(description="the breaking-change verdict against that version")
    breaking_changes: list[str]
    other_changes: list[str]
    notified: list[str] = Field(description="departments told of a breaking change")
    previous_major_served_until: date | None
    publishes: NextPublish


class ContractVersion(BaseModel):
    version: str
    status: str = Field(description="the contract's ODCS status; retired: no longer served")
    registered_by: str
    registered_at: datetime
    breaking_changes: list[str]
    deprecated_after: date | None
    sha256: str


class ContractHistory(BaseModel):
    dataset: str
    onboarding: OnboardingState = Field(description="where the dataset stands, from the "
                                        "registry, the pipeline's passes and its versions")
    versions: list[ContractVersion] = Field(description="newest first")


class Notification(BaseModel):
    id: int
    dataset: str
    kind: str
    message: str
    detail: dict[str, Any]
    created_at: datetime


class Notifications(BaseModel):
    department: str
    notifications: list[Notification] = Field(description="newest first")


# ---------- audit and transparency


class AuditRecord(BaseModel):
    """One row of the audit log (audit.events)."""

    event_id: int
    occurred_at: datetime
    kind: str
    request_id: str | None
    client_id: str | None
    role: str | None
    department: str | None
    purpose: str | None
    dataset: str | None
    dataset_version: int | None
    columns: list[str]
    unmasked_personal: list[str]
    filters: dict[str, Any]
    rows_returned: int
    decision: Literal["allow", "deny"] | None
    reason: str
    grant_id: str | None
    source_address: str | None
    status_code: int | None
    detail: dict[str, Any]


class AuditEvents(BaseModel):
    events: list[AuditRecord]
    next_after: int | None = Field(description="pass as after= for the next page")


class Reader(BaseModel):
    client_id: str | None
    role: str | None
    department: str | None
    purpose: str | None
    reads: int
    rows: int
    columns: list[str]


class AccessReport(BaseModel):
    dataset: str
    since: datetime
    until: datetime
    readers: list[Reader]
    denied_requests: int


class AnomalyFlag(BaseModel):
    rule: str
    client_id: str | None
    detail: dict[str, Any]


class Anomalies(BaseModel):
    since: datetime
    until: datetime
    flags: list[AnomalyFlag]


class MonthlyReads(BaseModel):
    month: str = Field(description="YYYY-MM, UTC")
    dataset: str | None
    consuming_department: str | None
    reads: int
    rows: int


class MonthlyOpenReads(BaseModel):
    """Reads of an open dataset's public release: anyone's, so no reader is named."""
    month: str = Field(description="YYYY-MM, UTC")
    dataset: str
    reads: int


class ActiveGrant(BaseModel):
    dataset: str
    purpose: str
    departments: list[str]
    valid_from: date | None
    valid_until: date | None


class LedgerCheckpoint(BaseModel):
    """The ledger's newest signed checkpoint: save it, and `hub audit verify --checkpoint`
    later refuses a ledger that ends before it."""
    last_seq: int
    head_hash: str
    signed_at: str  # the text that was signed: re-rendering it would break the signature
    key_id: str
    signature: str
    public_key_sha256: str


class FeedbackByDepartment(BaseModel):
    """Residents' feedback (POST /open/feedback) on one department's datasets."""

    department: str
    received: int
    answered: int
    median_hours_to_answer: float | None = Field(description="over the answered ones")


class TransparencyReport(BaseModel):
    generated_at: datetime
    reads_by_month: list[MonthlyReads]
    open_reads_by_month: list[MonthlyOpenReads]
    active_grants: list[ActiveGrant]
    ledger_checkpoint: LedgerCheckpoint | None
    feedback: list[FeedbackByDepartment] = []


class ActivityCount(BaseModel):
    at: datetime = Field(description="start of the hour or day (UTC)")
    department: str = Field(description="the reader's department ('none' for an unknown caller)")
    outcome: Literal["read", "denied"]
    events: int


class Activity(BaseModel):
    """Reads and denials over time, per department of the caller."""

    since: datetime
    until: datetime
    bucket: Literal["hour", "day"]
    counts: list[ActivityCount]
