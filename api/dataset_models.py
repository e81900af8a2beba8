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
    rows: int | None = Field(description="rows published (null for a caller whose grant "
                             "filters rows: the count is over every row)")
    quarantined: int | None = Field(description="rows the contract held back in that run "
                                    "(null, as rows, for a row-filtered caller)")


class DatasetVersions(BaseModel):
    dataset: str
    versions: list[PublishedVersionRow] = Field(description="newest first")
