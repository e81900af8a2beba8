"""A run whose worker died before the run started is marked Crashed (docs/workers.md).

The heartbeat watch only starts with a run's first heartbeat, which its flow sends. A worker
takes a run (Pending) and starts its process; if the worker's machine dies before the
process reaches Running, nothing would ever beat. The automation `hub deploy` makes for
that (`ensure_recovery`) runs here on a real Prefect server, against runs whose states the
test sets as a worker would: one that never starts, one that starts in time, and
another team's run that never starts either (a shared Prefect server's other flows).
"""

from __future__ import annotations

from pathlib import Path

from flows.deployments import TAG, ensure_recovery
from tests.test_cli import hub
from tests.test_worker_stop import prefect_env
from tests.topology_support import prefect_server, wait_for

START_SECONDS = 10  # Prefect's least window for a proactive trigger


def test_a_run_taken_but_never_started_is_marked_crashed(tmp_path: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Pending, Running, Scheduled

    @flow(name="taken-by-a-worker")
    def taken() -> None:
        """Never runs: the test moves its runs' states as a worker would."""

    with prefect_server(None, prefect_env(tmp_path), tmp_path) as (api, ready, _), \
            temporary_settings({PREFECT_API_URL: api}):
        ready()
        ensure_recovery(heartbeat_seconds=2, start_seconds=START_SECONDS)
        with get_client(sync_client=True) as client:
            stuck, started, other = (client.create_flow_run(taken, state=Scheduled(), tags=tags)
                                     for tags in ([TAG], [TAG], ["another-team"]))
            for run in (stuck, started, other):
                client.set_flow_run_state(run.id, Pending())
            client.set_flow_run_state(started.id, Running())

            def state(run) -> str:
                return client.read_flow_run(run.id).state

            crashed = wait_for(lambda: state(stuck).is_crashed() and state(stuck), 90,
                               "the run never started to be marked Crashed")
            assert f"not started within {START_SECONDS} s" in crashed.message
            assert state(started).is_running()  # started in time: left alone
            assert state(other).is_pending()  # not the hub's run: not the hub's business


def test_a_start_window_under_prefects_least_is_one_line() -> None:
    done = hub("deploy", env={"HUB_RUN_START_SECONDS": "5"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("error: HUB_RUN_START_SECONDS='5': Input should be greater "
                                   "than or equal to 10")
