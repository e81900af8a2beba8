"""dbt step: the dbt project under HUB_HOME (the repository's, with the files compiled from
the registry's contracts), then one `dbt build` of the models of every dataset to build.

The repository checkout is never written: a dataset onboarded by registering a contract
changes no tracked file. Its models are generated (contracts/dbt_models.py) unless the
repository's dbt_project has hand-written ones of the same name.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from contracts import Contract
from contracts.dbt_files import generated_files, hand_written_models
from contracts.dbt_models import staging_name
from flows.checks import Failure, StepResult
from hub.settings import Settings
from hub.warehouse import connection_params

NOT_NULL = re.compile(r'null value in column "(?P<column>[^"]+)".*violates not-null constraint')


# What dbt writes into a project folder, never copied from the repository's.
NOT_PROJECT = {"target", "logs", "dbt_packages"}


def project_dir(settings: Settings) -> Path:
    """The dbt project the pipeline builds, under HUB_HOME."""
    return settings.home / "dbt" / "project"


def prepare_project(contracts: list[Contract], settings: Settings) -> Path:
    """Mirror the repository's dbt project into project_dir() with the files compiled from
    `contracts` on top. Only changed files are written (dbt's partial parse keeps what it
    knows) and files no longer wanted (a retired dataset's models) are removed."""
    source, target = settings.dbt_project_dir, project_dir(settings)
    in_force = {name for c in contracts for name in (
        staging_name(c), c.relation_name, f"{c.relation_name}__quarantine")}
    wanted = {path.relative_to(source): path.read_text() for path in _project_files(source)
              if not _idle_model(path.relative_to(source), in_force)}
    compiled = generated_files(contracts, target, hand_written_models(source), with_models=True)
    wanted |= {path.relative_to(target): text for path, text in compiled.items()}
    for path in _project_files(target) if target.exists() else []:
        if path.relative_to(target) not in wanted:
            path.unlink()
    for relative, text in wanted.items():
        path = target / relative
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return target


def _idle_model(relative: Path, in_force: set[str]) -> bool:
    """A hand-written model (or its mart's YAML) of a dataset no contract in force
    describes. It is left out: its department's sources file is compiled from the contracts
    in force, so the model's source would be missing and dbt would refuse the whole
    project (a department onboarding a dataset beside a retired hand-written one)."""
    parts = relative.parts
    if len(parts) != 4 or parts[0] != "models" or parts[1] not in ("staging", "marts"):
        return False
    department, name = parts[2], relative.stem.removeprefix("_")
    dataset_model = name.startswith((f"{department}__", f"stg_{department}__"))
    is_model = relative.suffix == ".sql" or (parts[1] == "marts" and relative.suffix == ".yml")
    return dataset_model and is_model and name not in in_force


def _project_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()
            and not NOT_PROJECT & set(p.relative_to(root).parts[:1])
            and not p.name.startswith(".")]


def run_dbt(warehouse_url: str, contract: Contract, settings: Settings,
            project: Path | None = None) -> StepResult:
    """`dbt build` the dataset's mart and everything upstream of it, in `project`
    (default: the repository's dbt project, as it is)."""
    return run_dbt_many(warehouse_url, [contract], settings, project)[contract.dataset_id]


def run_dbt_many(warehouse_url: str, contracts: list[Contract], settings: Settings,
                 project: Path | None = None) -> dict[str, StepResult]:
    """One `dbt build` of every dataset's mart, quarantine and everything upstream; each
    dataset's result from the nodes it selected. One invocation, not one per dataset: dbt's
    start (project parse, manifest, connections) is paid once, and its threads build
    datasets side by side. A node that fails fails the datasets it belongs to; dbt skips
    what is downstream of it and carries on with the others."""
    from dbt.cli.main import dbtRunner  # heavy import, only when building

    for key, value in connection_params(warehouse_url).items():
        os.environ[f"HUB_DBT_{key.upper()}"] = value
    work, project = settings.home / "dbt", project or settings.dbt_project_dir
    # A target folder per project: dbt's partial parse (target/partial_parse.msgpack) from
    # another project of the same name would bring that project's tests along.
    target = work / "target" / hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:12]
    selected = [name for c in contracts
                for name in (f"+{c.relation_name}", f"{c.relation_name}__quarantine")]
    args = ["build", "--project-dir", str(project),
            "--profiles-dir", str(project), "--target-path", str(target),
            "--log-path", str(work / "logs"), "--select", *selected, "--quiet"]
    result = dbtRunner().invoke(args)
    if result.result is None:  # dbt could not even start: bad project or profile
        failed = StepResult(False, (Failure("dbt", "dbt", str(result.exception)),),
                            {"candidate_built": False})
        return {c.dataset_id: failed for c in contracts}
    results = list(result.result.results)
    return {c.dataset_id: _dataset_result(_owned(results, c.relation_name)) for c in contracts}


def _owned(results: list, relation: str) -> list:
    """The node results of one dataset: its mart and quarantine, the models they are built
    from, and the tests of those models."""
    parents = {r.node.unique_id: set(r.node.depends_on.nodes) for r in results}
    models = {r.node.unique_id for r in results if r.node.resource_type != "test"
              and r.node.name in (relation, f"{relation}__quarantine")}
    todo = list(models)
    while todo:  # upstream, through the nodes this build ran
        for parent in parents.get(todo.pop(), ()):
            if parent in parents and parent not in models:
                models.add(parent)
                todo.append(parent)
    return [r for r in results if r.node.unique_id in models
            or (r.node.resource_type == "test" and parents[r.node.unique_id] & models)]


def _dataset_result(results: list) -> StepResult:
    failed = [r for r in results if str(r.status) in ("error", "fail", "runtime error")]
    built = not any(r.node.resource_type == "model" for r in failed)
    return StepResult(not failed, tuple(_failure(r) for r in failed),
                      {"nodes": len(results), "candidate_built": built})


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
