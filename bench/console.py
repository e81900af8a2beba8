"""Benchmark: how long the console's pages take to serve, signed in, on a running hub.

Run by hand against `make demo` (or any `hub serve`) and a person made with
`hub users add NAME --role transport_analyst`:

    .venv/bin/python bench/console.py --base http://127.0.0.1:8000 --user NAME --password PW

Each round (`--rounds`, interleaved, see bench/rounds.py) fetches every page once, in a
rotated order, over one keep-alive connection: the time is the server's answer (rendering,
policy, audit record) plus one loopback round trip. A browser adds its own drawing time.
The last line is the figures: each page's median milliseconds.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import rounds  # noqa: E402

DATASET = "public_works.service_requests"
PAGES = {
    "transparency": "/",
    "catalog": "/console/catalog",
    "dataset": f"/console/datasets/{DATASET}",
    "rows": f"/console/datasets/{DATASET}/rows?status=eq.Closed",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--user", required=True, help="a transport_analyst's username")
    parser.add_argument("--password", required=True)
    rounds.add_rounds_argument(parser)
    args = parser.parse_args()
    with httpx.Client(base_url=args.base, follow_redirects=True, timeout=60) as client:
        _sign_in(client, args.user, args.password)
        variants = {name: _fetch(client, path) for name, path in PAGES.items()}
        results = rounds.run(variants, args.rounds, warmup=True)
    ratios = [rounds.ratio(f"{name}_ms", results,
                           lambda r, n=name: r[n]["seconds"] * 1000, digits=0)
              for name in PAGES]
    rows = [[name, rounds.summary([r[name]["seconds"] * 1000 for r in results], ".0f")]
            for name in PAGES]
    rounds.report(rounds.table(["page", "ms (median, range)"], rows), ratios)


def _sign_in(client: httpx.Client, user: str, password: str) -> None:
    form = client.get("/console/signin").text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    landed = client.post("/oauth/authorize", data=fields | {"username": user,
                                                            "password": password})
    if "hub_console" not in client.cookies:
        sys.exit(f"sign-in failed ({landed.status_code}): check --user and --password")


def _fetch(client: httpx.Client, path: str):
    def measure() -> rounds.Figures:
        def get() -> None:
            answer = client.get(path)
            if answer.status_code != 200:
                sys.exit(f"{path} answered {answer.status_code}: {answer.text[:200]}")
        return rounds.timed(get)
    return measure


if __name__ == "__main__":
    main()
