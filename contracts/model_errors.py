"""Pydantic's ValidationError as the hub's problems: (field path as written, what is wrong
and what to write instead), for files people write by hand (hubSource, policy files).

Pydantic's own wording names its types ("Input should be a valid dictionary or object to
extract fields from") and its locations carry union tags the writer never typed
(('rest', 'auth', 'api_key', 'keyEnv')); a department's engineer needs the path they wrote
and the fix, so each error is walked against the model to recover both.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

Problems = list[tuple[str, str]]
Step = tuple[str | int, Any]  # a part of the path, and the type that holds it

# The fix for a wrong type, when the field's description gives none.
TYPE_FIXES = {
    "date_type": "write a date as YYYY-MM-DD, unquoted",
    "int_type": "write a whole number",
    "float_type": "write a number",
    "string_type": "write text",
    "bool_type": "write true or false",
    "list_type": "write a list, e.g. [a, b]",
}
# Pydantic's words for "not a mapping" name its own machinery.
MAPPING_TYPES = ("dict_type", "model_type", "model_attributes_type")
# What was expected, where pydantic's wording talks of validation rather than of the file.
EXPECTED = {
    "too_short": "expected at least {min_length} item(s)",
    "string_too_short": "expected at least {min_length} character(s)",
    "greater_than": "expected a number over {gt:g}",
}


def problems_of(error: ValidationError, root: Any, prefix: str = "") -> Problems:
    """One problem per error of validating against `root` (a model or an annotated union);
    paths start with `prefix`, the place of the checked value in its file."""
    found = []
    for err in error.errors(include_url=False):
        steps = _steps(root, err["loc"])
        path, message = _join(prefix, [part for part, _ in steps]), _message(err, steps, root)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = _join(path, [err["ctx"]["discriminator"].strip("'")])
        found.append((path or "(file)", message))
    return found


def closest(word: str, choices: list[str]) -> str:
    """'; did you mean X?' for a likely misspelling of one of `choices`, else ''. Case is
    ignored: `batchsize` is a misspelt batchSize."""
    lowered = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.7)
    return f"; did you mean {lowered[match[0]]}?" if match else ""


def _join(prefix: str, parts: list[str | int]) -> str:
    path = prefix
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _steps(kind: Any, loc: tuple) -> list[Step]:
    """The parts of `loc` a person wrote, each with the type holding it: a discriminated
    union's tag is pydantic's, not the writer's, and is left out."""
    steps: list[Step] = []
    for part in loc:
        kind = _bare(kind)
        member = next((m for m in _models_of(kind) if part in _tags(m).values()), None)
        if member is not None:
            kind = member
            continue
        steps.append((part, kind))
        kind = _inner(kind, part)
    return steps


def _bare(kind: Any) -> Any:
    """`kind` without Annotated metadata or an `| None`."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif _is_union(kind) and type(None) in get_args(kind) and len(get_args(kind)) == 2:
            kind = next(a for a in get_args(kind) if a is not type(None))
        else:
            return kind


def _is_union(kind: Any) -> bool:
    return get_origin(kind) in (Union, types.UnionType)


def _models_of(kind: Any) -> list[type[BaseModel]]:
    return [m for m in get_args(kind) if _is_model(m)] if _is_union(kind) else []


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _tags(model: type[BaseModel]) -> dict[str, Any]:
    """Field -> value a discriminated union may select `model` by: its one-value Literal
    fields (a field such as `qos: Literal[0, 1, 2]` is a choice, not a tag)."""
    return {name: get_args(info.annotation)[0] for name, info in model.model_fields.items()
            if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1}


def _inner(kind: Any, part: str | int) -> Any:
    """The type found at `part` inside `kind` (None when it cannot be told)."""
    if _is_model(kind):
        info = _field(kind, part)
        return info.annotation if info else None
    args = get_args(kind)
    if get_origin(kind) is dict:
        return args[1]
    return args[0] if get_origin(kind) in (list, tuple, set, frozenset) and args else None


def _field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    return next((info for name, info in model.model_fields.items()
                 if key == (info.alias or name)), None)


def _selected_by(model: type[BaseModel]) -> str:
    """' for kind sql' when a discriminated union chose `model` by its `kind`, else ''."""
    return "".join(f" for {name} {value}" for name, value in _tags(model).items())


def _keys(model: type[BaseModel]) -> list[str]:
    return sorted(info.alias or name for name, info in model.model_fields.items())


def _message(err: dict[str, Any], steps: list[Step], root: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    last, holder = steps[-1] if steps else (None, root)
    info = _field(holder, last) if _is_model(holder) and last is not None else None
    fix = info.description if info and info.description else TYPE_FIXES.get(kind, "")
    if kind == "extra_forbidden" and _is_model(holder):
        allowed = _keys(holder)
        return (f"unknown key {last!r}{_selected_by(holder)}{closest(str(last), allowed)} "
                f"(allowed: {', '.join(allowed)})")
    if kind in MAPPING_TYPES:
        return f"got {_short(err['input'])}; write a mapping (key: value)"
    if kind == "missing":
        return f"missing; {fix or f'add {last}'}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_message(ctx, _bare(_inner_at(steps, root)))
    if kind == "literal_error":
        return f"got {err['input']!r}; write one of {ctx.get('expected')}"
    what = (EXPECTED[kind].format(**ctx) if kind in EXPECTED
            else err["msg"].replace("Input should be", "expected", 1))
    return f"got {_short(err['input'])}; {what}" + (f"; {fix}" if fix else "")


def _tag_message(ctx: dict[str, Any], union: Any) -> str:
    """A discriminated union's tag is missing or unknown: name every tag it knows."""
    name = ctx["discriminator"].strip("'")
    tags = [str(_tags(m)[name]) for m in _models_of(union) if name in _tags(m)]
    got = f"got {ctx['tag']!r}" if "tag" in ctx else "missing"
    return f"{got}; write {name}: one of {', '.join(tags)}"


def _inner_at(steps: list[Step], root: Any) -> Any:
    """The type at the end of `steps` (where a union's tag was looked for)."""
    if not steps:
        return root
    part, holder = steps[-1]
    return _inner(holder, part)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
