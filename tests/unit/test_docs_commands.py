"""Every command in the docs' console blocks names things that exist (check_doc_commands)."""

from __future__ import annotations

from scripts import check_doc_commands as docs


def test_every_documented_command_names_existing_targets_modules_and_paths() -> None:
    assert docs.check() == []


def test_commands_are_read_from_console_blocks() -> None:
    text = (
        "```console\n$ kubectl apply -f examples/minimal.yaml\nnamespace/x created\n"
        "$ helm install a \\\n  charts/nowhere\n```\n"
        "```console\nkubectl apply -f - <<'EOF'\nkind: X\nEOF\nmake nothing-here\n```\n"
    )
    found = list(docs.commands(text))
    assert found == [
        "kubectl apply -f examples/minimal.yaml",
        "helm install a    charts/nowhere",
        "kubectl apply -f - <<'EOF'",
        "make nothing-here",
    ]


def test_missing_paths_targets_and_modules_are_reported() -> None:
    targets = {"test", "check"}
    assert docs.problems_of("kubectl apply -f examples/minimal.yaml", targets) == []
    assert docs.problems_of("helm install a charts/nowhere", targets) == [
        "charts/nowhere does not exist"
    ]
    assert docs.problems_of("make nothing-here", targets) == ["no make target nothing-here"]
    assert docs.problems_of("python -m no_such_module", targets) == ["no module no_such_module"]
    assert "unknown program" in docs.problems_of("frobnicate x", targets)[0]


def test_sensorsim_commands_are_parsed_by_the_command_itself() -> None:
    assert docs.problems_of("sensorsim run --machines 10 --seed 1 --sink stdout", set()) == []
    assert docs.problems_of("sensorsim fidelity --data data/data_sensors.csv", set()) == []
    assert docs.problems_of("sensorsim --version", set()) == []
    assert docs.problems_of("sensorsim run --no-such-option", set()) == [
        "sensorsim run: unknown option --no-such-option"
    ]
    assert docs.problems_of("sensorsim frobnicate", set()) == [
        "sensorsim has no command 'frobnicate'"
    ]


def test_paths_named_in_prose_must_exist() -> None:
    text = "The loop is in `producer/app.py`; the runner in `testbed/no_such_module.py`."
    assert docs.missing_prose_paths(text) == ["testbed/no_such_module.py"]
