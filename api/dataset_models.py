"""Response bodies of a dataset's versions and its quarantine (GET /datasets/{id}/versions,
GET /datasets/{id}/quarantine), apart from api/models.py to keep each module short."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class QuarantinePage(BaseModel):
    """Rows the contract held back from the published version, with why."""

    dataset: str
    version: int | None = Field(description="the published version whose run held them back; "
                                "null before the first publish")
    total: int = Field(description="quarantined rows in all")
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="one object per row: the columns (masked as "
                                       "the caller's grant says), failed_rules and reasons")


class PublishedVersionRow(BaseModel):
    version: int
    contract_version: str
    published_at: datetime
    rows: int = Field(description="rows published")
    quarantined: int = Field(description="rows the contract held back in that run")


class DatasetVersions(BaseModel):
    dataset: str
    versions: list[PublishedVersionRow] = Field(description="newest first")
