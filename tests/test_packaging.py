"""pyproject.toml, the lock (requirements.txt, from pip-compile) and environment.yml (Binder) agree.

`make lock` regenerates the lock from pyproject.toml and environment.yml from the lock; these tests
fail when one of the three was edited without re-running it.
"""
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._\-]*)==(?P<version>[A-Za-z0-9.+!\-]+)$")
VIA_PYPROJECT = "mamlscope (pyproject.toml)"


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pyproject_requirements() -> list[Requirement]:
    project = _project()
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in reqs]


def _lock_lines() -> list[str]:
    """The requirement lines of the lock, in order (header, comments and ``# via`` blocks dropped)."""
    return [raw.strip() for raw in LOCK.read_text().splitlines()
            if raw.strip() and not raw.startswith("#") and not raw[:1].isspace()]


def _lock_pins() -> dict[str, Version]:
    pins = {}
    for line in _lock_lines():
        m = PIN.match(line)
        assert m, f"not an exact pin: {line!r}"
        pins[canonicalize_name(m["name"])] = Version(m["version"])
    return pins


def _lock_via() -> dict[str, list[str]]:
    """For each locked package, what pip-compile says pulled it in (its ``# via`` comments)."""
    via: dict[str, list[str]] = {}
    current = None
    for raw in LOCK.read_text().splitlines():
        if raw.strip() and not raw.startswith("#") and not raw[:1].isspace():
            m = PIN.match(raw.strip())
            current = canonicalize_name(m["name"]) if m else raw.strip()
            via[current] = []
        elif current is not None and raw[:1].isspace():
            text = raw.strip().removeprefix("#").strip()
            text = text.removeprefix("via").strip()
            if text:
                via[current].append(text)
        else:
            current = None
    return via


def test_lock_pins_every_package_exactly():
    lines = _lock_lines()
    assert lines, "requirements.txt pins nothing"
    bad = [line for line in lines if not PIN.match(line)]
    assert not bad, f"lock lines that are not exact `name==version` pins (or are -e/options): {bad}"
    names = [canonicalize_name(PIN.match(line)["name"]) for line in lines]
    assert len(names) == len(set(names)), "a package is pinned twice"
    assert canonicalize_name(_project()["name"]) not in names, "the project itself must not be in the lock"
    text = LOCK.read_text()
    for local in ("file://", "/opt/", "/tmp/", "/home/", "/root/", "/work/"):
        assert local not in text, f"local path {local!r} in requirements.txt"


def test_lock_satisfies_pyproject():
    pins = _lock_pins()
    missing, unsatisfied = [], []
    for req in _pyproject_requirements():
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            missing.append(str(req))
        elif not req.specifier.contains(version, prereleases=True):
            unsatisfied.append(f"{req} (locked {version})")
    assert not missing, f"pyproject requirements absent from requirements.txt (run `make lock`): {missing}"
    assert not unsatisfied, f"locked versions outside pyproject's ranges (run `make lock`): {unsatisfied}"


def test_lock_is_not_stale():
    """pip-compile writes `# via mamlscope (pyproject.toml)` under every direct dependency; the set of
    those must be pyproject's, and the extras in the header's command pyproject's extras."""
    via = _lock_via()
    attributed = {name for name, sources in via.items() if VIA_PYPROJECT in sources}
    declared = {canonicalize_name(r.name) for r in _pyproject_requirements()}
    assert attributed == declared, (
        "requirements.txt was not re-locked after pyproject.toml changed (run `make lock`): "
        f"only in pyproject {sorted(declared - attributed)}, only in the lock {sorted(attributed - declared)}")
    header = []
    for line in LOCK.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    command = next((line for line in header if line.lstrip("# ").startswith("pip-compile ")), "")
    assert command, "the lock's header does not show the pip-compile command"
    extras = set(re.findall(r"--extra[= ](\S+)", command))
    assert extras == set(_project()["optional-dependencies"]), f"the lock covers extras {sorted(extras)}"


def test_environment_yml_matches_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert "pip" in deps
    assert env["channels"] == ["conda-forge"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip == _lock_lines() + ["-e ."], "environment.yml differs from requirements.txt (run `make lock`)"


@pytest.mark.parametrize("path", ["requirements.txt", "environment.yml"])
def test_generated_files_say_how_to_regenerate(path):
    head = (ROOT / path).read_text().split("\n", 6)
    assert any(("pip-compile" in line or "make lock" in line) for line in head[:6])
