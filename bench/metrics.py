"""What the Prometheus middleware (api/metrics.py) costs a request: a hello route called
through ASGI in-process (no sockets, so the middleware is not lost in network noise), with
and without RequestMetrics, interleaved over rounds.

    python bench/metrics.py [--rounds 5] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from api.metrics import Meters, RequestMetrics  # noqa: E402
from bench import rounds  # noqa: E402


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


def app(with_metrics: bool) -> object:
    bare = Starlette(routes=[Route("/datasets/{dataset_id}", hello)])
    return RequestMetrics(bare, Meters()) if with_metrics else bare


async def calls(asgi: object, n: int) -> None:
    scope = {"type": "http", "method": "GET", "path": "/datasets/parks.visits",
             "raw_path": b"/datasets/parks.visits", "query_string": b"", "headers": [],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
             "root_path": ""}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    for _ in range(n):
        await asgi(dict(scope), receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rounds.add_rounds_argument(parser)
    parser.add_argument("--requests", type=rounds.positive_int, default=20_000)
    args = parser.parse_args()
    apps = {"bare": app(False), "metrics": app(True)}
    variants = {name: (lambda a=a: rounds.timed(lambda: asyncio.run(calls(a, args.requests))))
                for name, a in apps.items()}
    results = rounds.run(variants, args.rounds, warmup=True)
    per_request = {name: [s * 1e6 / args.requests for s in rounds.values(results, name,
                                                                          "seconds")]
                   for name in apps}
    lines = rounds.table(["variant", "us/request (median, range)"],
                         [[name, rounds.summary(us, ".1f")] for name, us in per_request.items()])
    ratio = rounds.ratio("metrics_vs_bare", results,
                         lambda r: r["metrics"]["seconds"] / r["bare"]["seconds"])
    rounds.report(lines, [ratio])


if __name__ == "__main__":
    main()
