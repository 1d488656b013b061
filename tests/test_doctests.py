"""The examples in the package's docstrings run and print what they say: a module moved or a default
changed breaks them here, not in a reader's hands. The same as ``pytest --doctest-modules ecasweep``
(with the root conftest's ``load_study`` in scope), inside the test suite that CI runs."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ecasweep
from ecasweep.spec import load_study

MODULES = sorted(m.name for m in pkgutil.walk_packages(ecasweep.__path__, "ecasweep.")
                 if m.name != "ecasweep.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes (a default storage, a file) writes here
    result = doctest.testmod(importlib.import_module(name), extraglobs={"load_study": load_study},
                             optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (printed above)"


def test_the_examples_are_found():
    found = doctest.DocTestFinder().find(importlib.import_module("ecasweep.spec.study"))
    assert len(MODULES) > 60 and sum(len(test.examples) for test in found) > 15
