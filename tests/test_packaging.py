"""The conda environment and pyproject.toml declare the same packages with the same ranges,
and the ranges admit Colab's preinstalled torch (so installing in Colab never reinstalls it)."""

import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in requirements}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    items = []
    for item in env["dependencies"]:
        if isinstance(item, dict):  # the pip section: what conda-forge lacks, and the package itself
            items += [line for line in item["pip"] if not line.startswith("-e ")]
        elif item != "pip" and not item.startswith("python"):  # pip itself and the interpreter are not ours
            items.append(item)
    for item in items:
        requirement = Requirement(item)
        found[CONDA_TO_PYPI.get(requirement.name.lower(), requirement.name.lower())] = str(requirement.specifier)
    return found


def test_environment_yml_matches_pyproject():
    assert conda_requirements() == pyproject_requirements(), (
        "environment.yml and pyproject.toml disagree: update both together"
    )


def test_environment_yml_installs_the_package_editable():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert "-e .[instructor,test]" in pip_section


def test_core_dependencies_are_ranges_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in map(Requirement, project["dependencies"]):
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), (
            f"{requirement} is pinned: Colab would reinstall it"
        )


@pytest.mark.parametrize("colab_version", ["2.3.0", "2.5.1", "2.8.0", "2.9.0"])
def test_colab_torch_versions_satisfy_the_range(colab_version):
    spec = pyproject_requirements()["torch"]
    assert Version(colab_version) in Requirement(f"torch{spec}").specifier
