"""Installs repeat exactly: the lock files pin every package with its hashes, and they agree with pyproject.toml.

pyproject.toml says what the project needs (ranges); `make lock` resolves it into requirements.lock (the image's
packages) and requirements-dev.lock (those plus the tools of `make test`), which `make install`, `.ci/run` and the
Dockerfile install with --require-hashes. A dependency added to or changed in pyproject.toml without `make lock`
fails here, naming it.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{lock}: {match.group(1)} has no hash"
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def requirements(group: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    raw = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in raw]


def unmet(required: list[Requirement], pinned: dict[str, str]) -> list[str]:
    problems = []
    for req in required:
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req} but the lock pins {version}")
    return problems


@pytest.mark.parametrize(
    ("lock", "groups"), [("requirements.lock", [None]), ("requirements-dev.lock", [None, "dev"])]
)
def test_the_lock_pins_what_pyproject_asks_for(lock, groups):
    pinned = pins(lock)
    required = [req for group in groups for req in requirements(group)]
    problems = unmet(required, pinned)
    assert not problems, f"run `make lock`: {problems}"


def test_the_image_and_the_test_run_install_the_same_versions():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    differ = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differ, f"run `make lock`: {differ}"


def test_a_changed_range_is_caught():
    pinned = {"django": "5.2.19"}
    assert unmet([Requirement("Django>=6.0")], pinned) == ["Django>=6.0 but the lock pins 5.2.19"]
    assert unmet([Requirement("django-axes>=8")], pinned) == ["django-axes>=8 is not in the lock"]
    assert unmet([Requirement("Django>=5.2,<5.3")], pinned) == []
