"""Doctests (``pytest --doctest-modules ecasweep``): the spec's method examples run on a loaded study."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _doctest_names(doctest_namespace):
    from ecasweep.spec import load_study

    doctest_namespace["load_study"] = load_study
