"""Lint-time guard for ODCS `type: sql` quality rules, which departments write themselves.

A rule may only read its own dataset with one SELECT. This check is the first wall, not the
only one: at run time the query also runs read-only, as a role that can read nothing but that
dataset, under a statement timeout (flows/sql_rules.py).
"""

from __future__ import annotations

import re

PLACEHOLDER = "{object}"
TOKEN = re.compile(r"""
    (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")+")
  | (?P<placeholder>\{object\}|\$\{table\})
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<space>\s+)
  | (?P<symbol>::|<=|>=|<>|!=|[-+*/%(),.;=<>|!~^\[\]:])
""", re.VERBOSE)
# Words that change data, sessions or the server, or smuggle a second statement's effect.
FORBIDDEN = frozenset([
    "insert", "update", "delete", "merge", "truncate", "drop", "alter", "create", "grant",
    "revoke", "copy", "call", "do", "execute", "lock", "vacuum", "analyze", "refresh", "set",
    "reset", "listen", "notify", "unlisten", "prepare", "deallocate", "into", "returning",
])
FORBIDDEN_PREFIXES = ("pg_", "dblink", "lo_", "current_setting", "set_config", "txid_",
                      "nextval", "setval", "query_to_xml", "table_to_xml")


class SqlRuleError(ValueError):
    """Why a rule's SQL is refused, in words a department engineer can act on."""


def tokens(query: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(query):
        match = TOKEN.match(query, pos)
        if match is None:
            raise SqlRuleError(f"cannot read the query at {query[pos:pos + 20]!r}")
        if match.lastgroup != "space":
            found.append((match.lastgroup, match.group()))
        pos = match.end()
    return found


def check_rule_sql(query: str, table: str) -> str:
    """Refuse anything but one SELECT on `table`; return the query with `{object}` for it."""
    if "--" in query or "/*" in query:
        raise SqlRuleError("comments are not accepted in rule SQL; remove them")
    toks = tokens(query.strip().rstrip(";"))
    if not toks or toks[0][1].lower() != "select":
        raise SqlRuleError("a rule must be a single SELECT returning one value")
    for kind, text in toks:
        _check_token(kind, text)
    _check_tables(toks, table)
    return "".join(_render(kind, text, table) for kind, text in _spaced(toks))


def _check_token(kind: str, text: str) -> None:
    word = text.lower()
    if text == ";":
        raise SqlRuleError("only one statement is allowed: remove the ';'")
    if kind == "word" and word in FORBIDDEN:
        raise SqlRuleError(f"{text!r} is not allowed: a rule may only read its own dataset")
    if kind == "word" and word.startswith(FORBIDDEN_PREFIXES):
        raise SqlRuleError(f"{text!r} is not allowed: server functions and catalogs are off "
                           "limits to quality rules")


def _check_tables(toks: list[tuple[str, str]], table: str) -> None:
    # After FROM or JOIN (and after each comma of a FROM list) must come the rule's own
    # table, {object}, or a parenthesised subquery whose tables are checked the same way.
    expecting = False
    for i, (kind, text) in enumerate(toks):
        if expecting:
            if text != "(" and not _is_own(kind, text, table):
                raise SqlRuleError(f"reads {text!r}; a rule may only read its own table "
                                   f"{table!r} (or write {PLACEHOLDER})")
            if i + 1 < len(toks) and toks[i + 1][1] == ".":
                raise SqlRuleError(f"schema-qualified name {text}.{toks[i + 2][1]} is not "
                                   f"allowed; write {PLACEHOLDER}")
            expecting = False
        elif (kind == "word" and text.lower() in ("from", "join")) or (
                text == "," and _in_from_list(toks, i)):
            expecting = True


def _in_from_list(toks: list[tuple[str, str]], comma: int) -> bool:
    """Is the comma at `comma` part of a FROM list at the same parenthesis depth?"""
    depth = 0
    for kind, text in reversed(toks[:comma]):
        if text == ")":
            depth += 1
        elif text == "(":
            if depth == 0:
                return False
            depth -= 1
        elif depth == 0 and kind == "word" and text.lower() in ("select", "where", "group",
                                                                "order", "having", "on"):
            return False
        elif depth == 0 and kind == "word" and text.lower() in ("from", "join"):
            return True
    return False


def _is_own(kind: str, text: str, table: str) -> bool:
    if kind == "placeholder":
        return True
    name = text[1:-1].replace('""', '"') if kind == "quoted" else text
    return name.lower() == table.lower() if kind == "word" else name == table


def _spaced(toks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for kind, text in toks:
        if out:
            out.append(("space", " "))
        out.append((kind, text))
    return out


def _render(kind: str, text: str, table: str) -> str:
    return PLACEHOLDER if kind != "space" and _is_own(kind, text, table) else text
