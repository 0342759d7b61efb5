"""Every runtime dependency is pinned to a range (issue 10: an unbounded ``typer>=0.12``
let Typer 0.29 change the look of ``--help``), and the installed versions are in it."""

from __future__ import annotations

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from .helpers import REPO

#: dependencies left without an upper bound, and why
OPEN_ENDED = {"tzdata": "time zone data, versioned by year: an old copy is wrong"}


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    return [Requirement(spec) for spec in specs]


def test_every_runtime_dependency_has_a_lower_and_an_upper_bound() -> None:
    for requirement in runtime_requirements():
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators, f"{requirement}: no lower bound"
        if requirement.name not in OPEN_ENDED:
            assert "<" in operators, f"{requirement}: no upper bound"


def test_the_installed_versions_are_in_range() -> None:
    for requirement in runtime_requirements():
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed), f"{requirement.name} {installed}"
