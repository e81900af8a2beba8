"""dbt step: compile the contract's dbt files, then `dbt build` the dataset's models."""

from __future__ import annotations

import os
import re
from pathlib import Path

from contracts import Contract
from contracts.dbt_files import generated_files
from flows.checks import Failure, StepResult
from hub.settings import Settings
from hub.warehouse import connection_params

NOT_NULL = re.compile(r'null value in column "(?P<column>[^"]+)".*violates not-null constraint')


def write_generated(contracts: list[Contract], project_dir: Path) -> list[Path]:
    """Write the compiled files that changed; return them."""
    changed = []
    for path, text in generated_files(contracts, project_dir).items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def run_dbt(warehouse_url: str, contract: Contract, settings: Settings) -> StepResult:
    """`dbt build` the dataset's mart and everything upstream of it."""
    from dbt.cli.main import dbtRunner  # heavy import, only when building

    for key, value in connection_params(warehouse_url).items():
        os.environ[f"HUB_DBT_{key.upper()}"] = value
    work = settings.home / "dbt"
    args = ["build", "--project-dir", str(settings.dbt_project_dir),
            "--profiles-dir", str(settings.dbt_project_dir), "--target-path", str(work / "target"),
            "--log-path", str(work / "logs"), "--select", f"+{contract.relation_name}",
            f"{contract.relation_name}__quarantine", "--quiet"]
    result = dbtRunner().invoke(args)
    if result.result is None:  # dbt could not even start: bad project or profile
        return StepResult(False, (Failure("dbt", "dbt", str(result.exception)),),
                          {"candidate_built": False})
    failed = [r for r in result.result.results
              if str(r.status) in ("error", "fail", "runtime error")]
    built = not any(r.node.resource_type == "model" for r in failed)
    return StepResult(result.success and not failed, tuple(_failure(r) for r in failed),
                      {"nodes": len(result.result.results), "candidate_built": built})


def _failure(node_result: object) -> Failure:
    node = node_result.node
    message = (node_result.message or "").strip()
    rule = node.config.meta.get("rule") if node.resource_type == "test" else None
    found = NOT_NULL.search(message)
    if rule is None and found:  # an enforced not-null constraint stopped the model build
        rule = f"not_null({found['column']})"
    if node.resource_type == "test" and node_result.failures:
        message = f"{node_result.failures} row(s) failed {node.name}"
    return Failure(rule or f"{node.resource_type} {node.name}", "dbt", _essential(message))


def _essential(message: str) -> str:
    # dbt wraps the database's words between a banner line and a "compiled code at" line.
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    kept = [ln for ln in lines[1:] if not ln.startswith("compiled code")]
    return " ".join(kept) or (lines[0] if lines else "failed")
