"""deploy/prefect.yaml stays in step with the contracts and the code it points at."""

from __future__ import annotations

import importlib

import yaml

from contracts import load_all
from tests.conftest import REPO


def test_every_deployment_points_at_a_flow_and_a_contracted_dataset():
    config = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    contracts = load_all(REPO / "contracts")
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert hasattr(getattr(module, name), "fn"), f"{name} is not a Prefect flow"
        if path != "flows/pipeline.py":
            continue  # backups: no dataset
        contract = contracts[deployment["parameters"]["dataset_id"]]
        assert deployment["schedules"][0]["cron"] == contract.source.schedule


def test_every_contracted_dataset_has_a_deployment():
    config = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    deployed = {d["parameters"]["dataset_id"] for d in config["deployments"]
                if "parameters" in d}
    assert deployed == set(load_all(REPO / "contracts"))


def test_backups_are_scheduled_and_verified():
    config = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in config["deployments"] if d["schedules"]}
    assert {"flows/backup.py:scheduled_backup", "flows/backup.py:scheduled_verify"} <= entrypoints
