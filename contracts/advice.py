"""Warnings about a contract that lints: it registers, but something will not go as its
author may expect. `POST /contracts` returns them with the registration."""

from __future__ import annotations

from contracts.model import Contract


def lint_warnings(contract: Contract) -> list[str]:
    """One line per warning, naming the field and what follows from it."""
    found = []
    if contract.retired:
        found.append("status: retired: this version retires the dataset; it is no longer "
                     "built and its rows route answers 410")
    if contract.source is None:
        found.append("customProperties.hubSource: missing: the next pipeline pass fails this "
                     "dataset's contract step; register a version saying where the data "
                     "comes from (kind: sql, rest, files, mqtt)")
    unmasked = [c.name for c in contract.columns if c.personal and not c.mask]
    if unmasked:  # a reviewer may want hash (joinable) rather than the type's default
        found.append(f"customProperties.hubMask: personal column(s) {', '.join(unmasked)} "
                     "name no mask: readers without an unmasking grant get their type's "
                     "default mask")
    return found


def source_settings(contract: Contract) -> list[str]:
    """The HUB_SOURCE_ variables the pipeline reads for this contract's source."""
    source = contract.source
    if source is None:
        return []
    names = [getattr(source, "connection_env", "")]
    auth = getattr(source, "auth", None)
    names += [getattr(auth, attr, "") for attr in ("key_env", "client_id_env",
                                                    "client_secret_env")]
    return [name for name in names if name]
