"""The docs (README.md and docs/*.md) agree with the code.

Every `hub` command and every `HUB_` setting is documented, nothing documented is missing
from the code, the README stays a short front door, and every relative link resolves. The
last tests feed each check a broken copy of the docs, so that each is seen to fail.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from hub.settings import Settings
from hub_cli.main import app

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_LIMIT = 12_000  # characters: the README is the front door, the rest lives in docs/
# Where `HUB_` names may be read outside the settings: the packages, the benchmarks, tests.
SCANNED = ("contracts", "access_policies", "hub", "flows", "api", "demo", "hub_cli",
           "bench", "tests")
# Per-contract variables (`connectionEnv`, `auth.*Env`) are named by departments'
# contracts, not by the hub: the docs give the family as a pattern.
SOURCE_PREFIX = "HUB_SOURCE_"
SOURCE_PATTERN = "HUB_SOURCE_<NAME>"

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_HUB = re.compile(r"`(hub(?: [^`\n]*)?)`")  # `hub`, `hub run`, not `hub_app`
OPTION = re.compile(r"^\[?(--[a-z][a-z0-9-]*)")
ENV_READ = re.compile(r"""(?:os\.environ(?:\.get|\.pop|\.setdefault)?\s*[\[(]|os\.getenv\()"""
                      r"""\s*["'](HUB_[A-Z0-9_]+)["']""")
DEPLOY_VAR = re.compile(r"\$(HUB_[A-Z0-9_]+)")
DOC_NAME = re.compile(r"HUB_[A-Z0-9_]+")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def doc_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def docs_text() -> str:
    return "\n".join(path.read_text() for path in doc_files())


# ---------- commands


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every runnable command under `command`, by its path (`("clients", "add")`)."""
    # Typer vendors its own Click: a group is whatever has sub-commands.
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return {path: command}
    found: dict[tuple[str, ...], Any] = {}
    for name, sub in subcommands.items():
        found |= leaf_commands(sub, (*path, name))
    return found


def hub_spans(text: str) -> list[str]:
    """The `hub ...` commands the text shows: inline code, and lines of code blocks."""
    spans = INLINE_HUB.findall(FENCE.sub("", text))
    for block in FENCE.findall(text):
        lines = (line.strip().removeprefix("$ ") for line in block.splitlines())
        spans += [line for line in lines if line.startswith("hub ")]
    return spans


def resolve(root: Any, span: str) -> tuple[tuple[str, ...], str | None]:
    """The command path a documented span names, and what is wrong with it (None: nothing)."""
    node, path = root, ()
    words = span.split()[1:]
    for i, word in enumerate(words):
        subcommands = getattr(node, "commands", None)
        if not subcommands:  # a runnable command: the rest are its arguments and options
            return path, unknown_options(node, words[i:], span)
        if word not in subcommands:
            return path, f"`{span}`: there is no command `hub {' '.join((*path, word))}`"
        node, path = subcommands[word], (*path, word)
    return path, None


def unknown_options(command: Any, words: list[str], span: str) -> str | None:
    known = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    bad = [m[1] for word in words if (m := OPTION.match(word)) and m[1] not in known]
    return f"`{span}`: no option {', '.join(bad)}" if bad else None


def command_problems(text: str) -> tuple[list[str], list[str]]:
    """(commands the text never shows, spans naming no command or no option)."""
    root = typer.main.get_command(app)
    shown, wrong = set(), []
    for span in hub_spans(text):
        path, problem = resolve(root, span)
        shown.add(path)
        wrong += [problem] if problem else []
    missing = [" ".join(("hub", *p)) for p in leaf_commands(root) if p not in shown]
    return sorted(missing), wrong


# ---------- settings


def settings_fields() -> set[str]:
    return {f"HUB_{name.upper()}" for name in Settings.model_fields}


def names_read_elsewhere() -> set[str]:
    """`HUB_` names read with os.environ in the code, and by the Prefect deployments."""
    names: set[str] = set()
    for package in SCANNED:
        for path in (REPO / package).rglob("*.py"):
            if path != Path(__file__).resolve():  # this file's patterns are not reads
                names |= set(ENV_READ.findall(path.read_text()))
    for path in (REPO / "deploy").glob("*.yaml"):
        names |= set(DEPLOY_VAR.findall(path.read_text()))
    return names


def named_by_contracts() -> set[str]:
    found = (re.findall(r"HUB_SOURCE_[A-Z0-9_]+", path.read_text())
             for path in (REPO / "contracts").rglob("*.odcs.yaml"))
    return {name for names in found for name in names}


def undocumented_settings(text: str) -> list[str]:
    """Names the code reads that the text never mentions."""
    fields, elsewhere = settings_fields(), names_read_elsewhere()
    per_contract = {n for n in elsewhere | named_by_contracts()
                    if n.startswith(SOURCE_PREFIX) and n not in fields}
    missing = sorted((fields | elsewhere) - per_contract - set(DOC_NAME.findall(text)))
    if per_contract and SOURCE_PATTERN not in text:
        missing.append(f"{SOURCE_PATTERN} (the variables contracts name)")
    return missing


def settings_not_in_code(text: str) -> list[str]:
    """Names the text mentions that nothing reads; `HUB_X_<...>` stands for a family."""
    known = settings_fields() | names_read_elsewhere() | named_by_contracts()
    wrong = []
    for name in sorted(set(DOC_NAME.findall(text))):
        family = name.endswith("_")  # e.g. HUB_SOURCE_ of HUB_SOURCE_<NAME>
        if not (any(k.startswith(name) for k in known) if family else name in known):
            wrong.append(name)
    return wrong


# ---------- links


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if heading := HEADING.match(line):
            base = slug(heading[1])
            found.add(f"{base}-{seen[base]}" if seen[base] else base)  # repeats get -1, -2
            seen[base] += 1
    return found


def broken_links(path: Path) -> list[str]:
    """Relative links in a Markdown file whose file, or heading, does not exist."""
    wrong = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if SCHEME.match(target):  # http:, mailto: ...: not ours to check offline
            continue
        name, _, anchor = target.partition("#")
        dest = (path.parent / name).resolve() if name else path
        if not dest.exists():
            wrong.append(f"{path.name}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            wrong.append(f"{path.name}: {target}: no heading #{anchor} in {dest.name}")
    return wrong


# ---------- the docs as they are


def test_readme_is_a_short_front_door():
    text = README.read_text()
    assert len(text) < README_LIMIT, f"README.md is {len(text)} characters; move detail to docs/"
    for command in ("make demo", "make test"):
        assert re.search(rf"^{command}\b", text, re.M), f"the quickstart lost `{command}`"


def test_every_hub_command_is_documented():
    missing, _ = command_problems(docs_text())
    assert missing == [], f"document these in docs/operations.md: {missing}"


def test_every_documented_hub_command_exists():
    _, wrong = command_problems(docs_text())
    assert wrong == []


def test_every_setting_is_documented():
    assert undocumented_settings(docs_text()) == []


def test_every_documented_setting_exists():
    assert settings_not_in_code(docs_text()) == []


def test_every_relative_link_resolves():
    assert [p for path in doc_files() for p in broken_links(path)] == []


# ---------- each check, fed broken docs, fails


def test_a_setting_left_out_of_the_docs_is_caught():
    text = docs_text().replace("HUB_RATE_LIMIT_PER_MINUTE", "the rate limit")
    assert undocumented_settings(text) == ["HUB_RATE_LIMIT_PER_MINUTE"]
    without_pattern = docs_text().replace(SOURCE_PATTERN, "a source variable")
    assert undocumented_settings(without_pattern) == [
        f"{SOURCE_PATTERN} (the variables contracts name)"]


def test_a_setting_the_code_does_not_read_is_caught():
    text = docs_text() + "\nSet `HUB_API_WORKERS`, or any `HUB_NOPE_<NAME>`.\n"
    assert settings_not_in_code(text) == ["HUB_API_WORKERS", "HUB_NOPE_"]


def test_a_command_left_out_of_the_docs_is_caught():
    text = docs_text().replace("`hub keys rotate", "`hub keys")
    assert command_problems(text)[0] == ["hub keys rotate"]


def test_a_command_or_option_that_does_not_exist_is_caught():
    text = "`hub clients frobnicate NAME`, `hub audit verify --since T`, " \
           "`hub contracts`\n```sh\nhub nope\n```\n"
    wrong = command_problems(text)[1]
    assert wrong == ["`hub clients frobnicate NAME`: there is no command "
                     "`hub clients frobnicate`",
                     "`hub audit verify --since T`: no option --since",
                     "`hub nope`: there is no command `hub nope`"]


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## A heading, with code\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#a-heading-with-code-1) [web](https://example.org/x.md)\n"
                    "[gone](missing.md) [no anchor](there.md#elsewhere) [self](#nowhere)\n"
                    "```\n[in code](ignored.md)\n```\n")
    assert broken_links(page) == ["page.md: missing.md: no such file",
                                  "page.md: there.md#elsewhere: no heading #elsewhere in "
                                  "there.md",
                                  "page.md: #nowhere: no heading #nowhere in page.md"]
