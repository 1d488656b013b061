"""The README against the code it documents, read from the tree when the test runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_NAME = re.compile(r"ECASWEEP_[A-Z][A-Z0-9_]*")


def _read_by_code() -> dict[str, Path]:
    """Every ``ECASWEEP_*`` name that appears as a whole string literal in the package, the
    benchmarks or the test fixtures (``os.environ.get("ECASWEEP_DATA")``, ``envvar="..."``):
    names the code reads, not names a docstring mentions."""
    files = [*ROOT.joinpath("ecasweep").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py"),
             ROOT / "tests" / "conftest.py"]
    names: dict[str, Path] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                names.setdefault(node.value, file.relative_to(ROOT))
    return names


def test_every_environment_variable_in_the_readme_is_read_and_every_one_read_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(ENV_NAME.findall(readme))
    read = _read_by_code()
    assert {"ECASWEEP_STORAGE", "ECASWEEP_DATA"} <= set(read)  # the scan finds what it should
    assert documented - set(read) == set(), "named in README.md but read nowhere"
    assert {name: str(path) for name, path in read.items() if name not in documented} == {}, \
        "read by the code but not in README.md"


def test_readme_names_environment_variables_whole():
    """Every ``$ECA...`` in the README is a whole variable name (once, 9 of them were garbled)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for match in re.finditer(r"\$ECA\w*", readme):
        assert ENV_NAME.fullmatch(match.group(0)[1:]), match.group(0)
    assert not re.search(r"[^A-Z_]_(STORAGE|DATA|HEARTBEAT|FAULT|REQUIRE_DATA|REQUIRE_PG)\b", readme)
