"""Check the commands in the docs' ``console`` blocks against the checkout.

Every command line of README.md, docs/*.md and charts/sensorsim/README.md is classified:

- run here by tests (``make`` targets, ``python -m`` modules, ``python scripts/...``): the
  target, module or script must exist;
- needing a cluster, Docker or the internet (``kubectl``, ``helm``, ``docker``, ``kind``,
  ``skaffold``, ``curl``, ``pip``): checked for syntax and paths only — every repository path
  they name (``-f examples/minimal.yaml``, ``charts/sensorsim``, ``kind/cluster.yaml``) must
  exist;
- ``sensorsim``: the command line is parsed by the command's own parsers (``--help`` and
  ``--version`` aside), so an option the README shows must exist;
- anything else is reported, so a new kind of command gets a decision.

Beyond the commands, every repository path the prose names in backquotes
(`` `producer/app.py` ``, `` `testbed/pods/` ``) must exist, so a moved module takes its docs
along.

Usage::

    python scripts/check_doc_commands.py      # exit 1 and list the problems
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from producer.cli.analysis import fidelity_parser, profile_parser
from producer.cli.run import run_parser

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    REPO_ROOT / "charts" / "sensorsim" / "README.md",
)
PATHS_ONLY = frozenset({"kubectl", "helm", "docker", "kind", "skaffold", "curl", "pip"})
SHELL_WORDS = frozenset({".", "source", "cd", "export", "echo", "cat", "time", "git"})
_BLOCK = re.compile(r"^```(?:console|bash|sh|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PROSE_PATH = re.compile(
    r"`((?:producer|domain|operator|testbed|tests|bench|scripts|charts|tools|data|docs|examples)"
    r"/[\w./-]+)`"
)
_REPO_PATH = re.compile(r"^(examples|charts|kind|data|scripts|bench|docs|operator)/[\w./-]*$")


def commands(text: str) -> Iterator[str]:
    """Command lines of the console blocks: ``$ `` prompts stripped, continuations joined,
    output lines (after a ``$`` prompt line, those without one) and heredoc bodies skipped."""
    for block in _BLOCK.findall(text):
        lines = block.splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        pending, heredoc = "", None
        for raw in lines:
            if heredoc is not None:
                heredoc = None if raw.strip() == heredoc else heredoc
                continue
            if prompted and not raw.startswith("$ ") and not pending:
                continue
            line = raw.removeprefix("$ ").split(" #", 1)[0].rstrip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            command, pending = (pending + line).strip(), ""
            marker = re.search(r"<<'?(\w+)'?", command)
            if marker:
                heredoc = marker.group(1)
            if command and not command.startswith("#"):
                yield command


def _words(command: str) -> list[str]:
    words = shlex.split(command.split("|", 1)[0].split("&&", 1)[0].split("<<", 1)[0])
    while words and "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)  # VAR=value prefixes
    if words and words[0].endswith(("python", "pytest")) and "/" in words[0]:
        words[0] = Path(words[0]).name  # .venv/bin/python
    return words


def _make_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, flags=re.MULTILINE))


def problems_of(command: str, targets: set[str]) -> list[str]:
    words = _words(command)
    if not words:
        return []
    program, args = words[0], words[1:]
    found = [
        f"{word} does not exist"
        for word in args
        if _REPO_PATH.match(word) and not (REPO_ROOT / word.rstrip("/")).exists()
    ]
    if program == "make":
        found += [f"no make target {arg}" for arg in args if "=" not in arg and arg not in targets]
    elif program in ("python", "python3") and args[:1] == ["-m"] and len(args) > 1:
        if importlib.util.find_spec(args[1]) is None:
            found.append(f"no module {args[1]}")
    elif program in ("python", "python3") and args:
        if not (REPO_ROOT / args[0]).exists():
            found.append(f"{args[0]} does not exist")
    elif program == "pytest":
        found += [
            f"{arg} does not exist"
            for arg in args
            if arg.startswith("tests") and not (REPO_ROOT / arg.split("::")[0]).exists()
        ]
    elif program == "sensorsim":
        found += _sensorsim_problems(args)
    elif program not in PATHS_ONLY | SHELL_WORDS:
        found.append(f"unknown program {program!r}: classify it in scripts/check_doc_commands.py")
    return found


def _sensorsim_problems(args: list[str]) -> list[str]:
    """What ``sensorsim``'s own parsers refuse in ``args`` (none for --help and --version)."""
    if {"--help", "-h", "--version"} & set(args):
        return []
    command = args[0] if args and not args[0].startswith("-") else "run"
    parsers = {
        "run": lambda: run_parser("sensorsim", "0"),
        "profile": lambda: profile_parser("sensorsim"),
        "fidelity": lambda: fidelity_parser("sensorsim"),
    }
    if command not in parsers:
        return [f"sensorsim has no command {command!r}"]
    rest = args[1:] if args and args[0] == command else args
    parser = parsers[command]()
    parser.exit_on_error = False
    try:
        _, unknown = parser.parse_known_args(rest)
    except argparse.ArgumentError as exc:
        return [f"sensorsim {command}: {exc}"]
    return [f"sensorsim {command}: unknown option {word}" for word in unknown]


def missing_prose_paths(text: str) -> list[str]:
    """The repository paths named in backquotes in ``text`` that do not exist."""
    paths = dict.fromkeys(_PROSE_PATH.findall(text))
    return [path for path in paths if not (REPO_ROOT / path).exists()]


def check() -> list[str]:
    targets = _make_targets()
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        name = document.relative_to(REPO_ROOT)
        for command in commands(text):
            found += [
                f"{name}: `{command}`: {problem}" for problem in problems_of(command, targets)
            ]
        found += [f"{name}: `{path}` does not exist" for path in missing_prose_paths(text)]
    return found


def main() -> int:
    found = check()
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
