"""Catalog search: the caller's visible datasets ranked by PostgreSQL full-text search.

Only the datasets the caller may read are sent to the query, with only the columns their
grant shows: a dataset or column the caller cannot see never matches, nor moves a rank.
The documents are built per request from the contracts in memory (a city has tens of
datasets, not millions): nothing to index or keep in step with the registry.

Weights: title A, description B, column names C, column descriptions D (ts_rank's
defaults give them 1, 0.4, 0.2 and 0.1).
"""

from __future__ import annotations

from typing import Any, Literal

from psycopg import AsyncConnection

from access_policies import Decision
from api.query import bad
from contracts import Contract

Quality = Literal["passed", "failed", "unchecked"]
MAX_QUERY = 200  # characters of q

RANK = """
select d.id from unnest(%(ids)s::text[], %(titles)s::text[], %(descriptions)s::text[],
                        %(names)s::text[], %(notes)s::text[])
       as d(id, title, description, names, notes),
     websearch_to_tsquery('english', %(q)s) q,
     lateral (select setweight(to_tsvector('english', d.title), 'A')
                  || setweight(to_tsvector('english', d.description), 'B')
                  || setweight(to_tsvector('english', d.names), 'C')
                  || setweight(to_tsvector('english', d.notes), 'D') as document) v
where v.document @@ q
order by ts_rank(v.document, q) desc, d.id
"""


def check(q: str | None) -> str | None:
    """The search words, or None for no search; 400 for words that cannot be searched."""
    if q is None:
        return None
    if not q.strip():
        raise bad("q", "give at least one word to search for, e.g. q=street+graffiti")
    if len(q) > MAX_QUERY:
        raise bad("q", f"at most {MAX_QUERY} characters")
    return q


def filtered(visible: list[tuple[Contract, Decision]], status: dict[str, dict[str, Any]],
             department: str | None,
             quality: Quality | None) -> list[tuple[Contract, Decision]]:
    """`visible` narrowed to a department and to the outcome of the latest check."""
    return [(c, d) for c, d in visible
            if (department is None or c.department == department)
            and (quality is None or _quality(status.get(c.dataset_id)) == quality)]


def _quality(status: dict[str, Any] | None) -> Quality:
    checked = (status or {}).get("quality")
    if checked is None:
        return "unchecked"
    return "passed" if checked["last_check_passed"] else "failed"


async def ranked(conn: AsyncConnection, q: str,
                 visible: list[tuple[Contract, Decision]]) -> list[str]:
    """The ids of the `visible` datasets matching `q`, best first."""
    if not visible:
        return []
    shown = [(c, {col.name for col in d.columns}) for c, d in visible]
    params = {
        "q": q, "ids": [c.dataset_id for c, _ in shown],
        "titles": [c.title for c, _ in shown],
        "descriptions": [c.description for c, _ in shown],
        # Words of a name: council_district is searched as "council district".
        "names": [" ".join(col.name.replace("_", " ") for col in c.columns if col.name in n)
                  for c, n in shown],
        "notes": [" ".join(col.description for col in c.columns if col.name in n)
                  for c, n in shown],
    }
    return [row[0] for row in await (await conn.execute(RANK, params)).fetchall()]
