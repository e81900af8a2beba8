"""Charts drawn on the server as SVG by Vega-Lite (vl-convert-python: a self-contained
renderer, no browser script and no CDN). The page embeds the SVG in a figure with a text
alternative; the table beside each chart carries the same numbers."""

from __future__ import annotations

from typing import Any

import vl_convert
from starlette.concurrency import run_in_threadpool

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


async def bars(values: list[dict[str, Any]], x: str, y: str, color: str | None = None,
               x_title: str = "", y_title: str = "") -> str:
    """A (stacked) bar chart as SVG markup; an empty string when there is nothing to draw."""
    if not values:
        return ""
    encoding: dict[str, Any] = {
        "x": {"field": x, "type": "nominal", "title": x_title or x, "sort": None},
        "y": {"field": y, "type": "quantitative", "title": y_title or y,
              # Counts: whole-number ticks, and no more ticks than units (a stack of 2
              # otherwise gets ticks at 0.5 steps, each labelled as a whole number twice).
              "axis": {"format": "d", "tickMinStep": 1,
                       "tickCount": max(1, min(5, _tallest(values, x, y)))}},
    }
    if color:
        encoding["color"] = {"field": color, "type": "nominal", "title": color}
    spec = {"$schema": SCHEMA, "data": {"values": _plain(values)}, "mark": "bar",
            "encoding": encoding, "width": {"step": 28}, "height": 180,
            "background": "transparent",
            "config": {"axis": {"labelColor": "#888", "titleColor": "#888"},
                       "legend": {"labelColor": "#888", "titleColor": "#888"}}}
    # CPU-bound (about 30 ms after the first): off the event loop.
    svg = await run_in_threadpool(vl_convert.vegalite_to_svg, spec)
    return _decorative(svg)


def _tallest(values: list[dict[str, Any]], x: str, y: str) -> int:
    """The highest stack: the sum of y per x."""
    stacks: dict[Any, float] = {}
    for row in values:
        stacks[row[x]] = stacks.get(row[x], 0) + (row[y] or 0)
    return int(max(stacks.values(), default=0))


def _plain(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v if isinstance(v, int | float | str) or v is None else str(v)
             for k, v in row.items()} for row in values]


def _decorative(svg: str) -> str:
    # The figure around it is the labelled image; the marks inside need no roles of their own.
    return svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)
