"""Response parts of /contracts about onboarding: what registering a version will lead to,
and where the dataset stands (hub/onboarding.py derives both)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class NextPublish(BaseModel):
    """When the dataset first publishes under the version just registered."""

    when: str = Field(description="in words, e.g. on the next pipeline pass: the next "
                      "`hub run`")
    deployment: str | None = Field(description="the scheduled Prefect deployment that runs "
                                   "the dataset (HUB_DEPLOYMENTS_FILE), if there is one")
    schedule: str | None = Field(description="that deployment's cron expression")
    needs: list[str] = Field(description="the HUB_SOURCE_ variables the pipeline reads for "
                             "the source: set them where the pipeline runs")


class PublishedVersion(BaseModel):
    version: int = Field(description="the published version the rows routes serve")
    contract_version: str
    published_at: datetime
    rows: int
    quarantined: int


class PassFailure(BaseModel):
    step: str = Field(description="the pipeline step (contract, ingest, build, validate, "
                      "publish...) or the contract rule that failed")
    kind: str = Field(description="whose problem: contract, source, data, warehouse, dbt, "
                      "great_expectations, sandbox, hub...")
    reason: str = Field(description="what to fix, as `hub run` prints it; shown to the "
                        "owning department only")


class LastPass(BaseModel):
    """The newest pipeline pass since the newest version was registered."""

    run_id: uuid.UUID
    status: Literal["published", "failed"]
    at: datetime
    rows_loaded: int
    failures: list[PassFailure]


class OnboardingState(BaseModel):
    state: Literal["registered", "awaiting_first_load", "published", "failing", "retired"] = \
        Field(description="registered: no pipeline pass since; awaiting_first_load: a pass ran "
              "but no row was delivered; published; failing: the last pass failed (the last "
              "good version, if any, stays served); retired")
    detail: str = Field(description="the state in words, with the reason when failing")
    contract_version: str = Field(description="the newest registered version")
    published: PublishedVersion | None = Field(description="the newest published version")
    last_pass: LastPass | None
