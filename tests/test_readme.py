"""The README against the code it documents, read from the tree when the test runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_NAME = re.compile(r"ECASWEEP_[A-Z][A-Z0-9_]*")


def _read_by_code(files: list[Path] | None = None) -> dict[str, Path]:
    """Every ``ECASWEEP_*`` name that appears as a whole string literal in ``files`` (by default the
    package and the benchmarks; ``os.environ.get("ECASWEEP_DATA")``, ``envvar="..."``): names the
    code reads, not names a docstring mentions."""
    files = files or [*ROOT.joinpath("ecasweep").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]
    names: dict[str, Path] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                names.setdefault(node.value, file.relative_to(ROOT))
    return names


def _check_documented(doc: Path, read: dict[str, Path]) -> None:
    documented = set(ENV_NAME.findall(doc.read_text(encoding="utf-8")))
    assert documented - set(read) == set(), f"named in {doc.name} but read nowhere"
    assert {name: str(path) for name, path in read.items() if name not in documented} == {}, \
        f"read by the code but not in {doc.name}"


def test_every_environment_variable_in_the_readme_is_read_and_every_one_read_is_documented():
    read = _read_by_code()
    assert {"ECASWEEP_STORAGE", "ECASWEEP_DATA"} <= set(read)  # the scan finds what it should
    _check_documented(ROOT / "README.md", read)


def test_the_test_suites_own_variables_are_documented_beside_it_not_in_the_readme():
    """Variables only the test fixtures read (not those they set for ecasweep, like ECASWEEP_STORAGE)."""
    package = _read_by_code()
    read = {name: path for name, path in _read_by_code([ROOT / "tests" / "conftest.py"]).items()
            if name not in package}
    assert {"ECASWEEP_REQUIRE_DATA", "ECASWEEP_REQUIRE_PG"} <= set(read)  # the scan finds what it should
    _check_documented(ROOT / "tests" / "README.md", read)
    readme = set(ENV_NAME.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    assert readme & set(read) == set(), "README.md names a variable ecasweep never reads"


def test_readme_names_environment_variables_whole():
    """Every ``$ECA...`` in the README is a whole variable name (once, 9 of them were garbled)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for match in re.finditer(r"\$ECA\w*", readme):
        assert ENV_NAME.fullmatch(match.group(0)[1:]), match.group(0)
    assert not re.search(r"[^A-Z_]_(STORAGE|DATA|HEARTBEAT|FAULT|REQUIRE_DATA|REQUIRE_PG)\b", readme)
