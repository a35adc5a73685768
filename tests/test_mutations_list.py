"""The mutation list behind `make mutants` stays usable: every entry applies to today's code and names real tests."""

from __future__ import annotations

import re

from conftest import ROOT

from scripts import mutants


def test_every_mutation_applies_once_and_names_existing_tests():
    mutations = mutants.load_mutations()
    assert len(mutations) >= 20
    assert len({m["name"] for m in mutations}) == len(mutations)
    for m in mutations:
        assert mutants.occurrences(ROOT, m) == 1, f"{m['name']}: its text must occur exactly once in {m['file']}"
        assert m["find"] != m["replace"], m["name"]
        for test in m["tests"]:
            path, _, name = test.partition("::")
            source = (ROOT / path).read_text()
            if name:
                function = re.sub(r"\[.*\]$", "", name)
                assert re.search(rf"^def {re.escape(function)}\(", source, re.M), f"{m['name']}: no test {test}"


def test_mutants_refuses_an_unknown_name(capsys):
    assert mutants.main(["--only", "no-such-mutation"]) == 2
    assert "unknown mutation" in capsys.readouterr().err
