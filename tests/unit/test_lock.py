"""The runtime lock: requirements.txt lists, with their hashes, exactly the packages the app's runtime set installs.

``make unit`` runs this under Python 3.11 (.venv) and ``make worker`` again under 3.13 (.venv-313): each time the
environment that was installed from the lock is compared with the lock's entries for the running Python.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.txt"
TOP_LEVEL = ROOT / "requirements.in"


def logical_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def lock_entries() -> list[tuple[Requirement, list[str]]]:
    entries = []
    for line in logical_lines(LOCK):
        requirement, *hashes = re.split(r"\s+--hash=", line)
        entries.append((Requirement(requirement), hashes))
    return entries


def applies(requirement: Requirement, extra: str = "") -> bool:
    return requirement.marker is None or requirement.marker.evaluate({**default_environment(), "extra": extra})


def pinned_version(requirement: Requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", str(requirement)
    return spec.version


def locked_here() -> dict[NormalizedName, str]:
    """The lock's entries for the running Python: name -> version."""
    return {canonicalize_name(r.name): pinned_version(r) for r, _ in lock_entries() if applies(r)}


def runtime_closure() -> dict[NormalizedName, str]:
    """The installed distributions the runtime set pulls in, from requirements.in through each package's installed
    metadata (markers and extras evaluated for this Python): name -> installed version."""
    found: dict[NormalizedName, str] = {}
    pending = [(r, "") for r in map(Requirement, logical_lines(TOP_LEVEL)) if applies(r)]
    seen: set[tuple[NormalizedName, str]] = set()
    while pending:
        requirement, _ = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        if all((name, extra) in seen for extra in ["", *extras]):
            continue
        found[name] = metadata.version(name)
        for extra in ["", *extras]:
            seen.add((name, extra))
            for text in metadata.requires(name) or []:
                dependency = Requirement(text)
                if dependency.marker is None and extra:
                    continue  # already taken with the base requirements
                if applies(dependency, extra):
                    pending.append((dependency, extra))
    return found


def test_every_lock_entry_is_pinned_with_hashes():
    entries = lock_entries()
    assert len(entries) > 50
    for requirement, hashes in entries:
        pinned_version(requirement)
        assert hashes, requirement.name
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), requirement.name


def test_the_lock_pins_each_top_level_requirement_as_requirements_in_does():
    locked = {(canonicalize_name(r.name), str(r.specifier), str(r.marker or "")) for r, _ in lock_entries()}
    for requirement in map(Requirement, logical_lines(TOP_LEVEL)):
        name = canonicalize_name(requirement.name)
        matching = {entry for entry in locked if entry[0] == name and entry[1] == str(requirement.specifier)}
        assert matching, f"requirements.in pins {requirement}; the lock does not: run `make lock`"
        if applies(requirement):
            assert locked_here()[name] == pinned_version(requirement), str(requirement)


def test_the_installed_runtime_set_is_exactly_the_lock_for_this_python():
    """Every package the runtime set installed is in the lock at the installed version, and nothing the lock lists
    for this Python is missing (a dev tool that moved a runtime package is caught here too)."""
    installed = runtime_closure()
    locked = locked_here()
    moved = {name: (version, locked.get(name)) for name, version in installed.items() if locked.get(name) != version}
    assert not moved, f"installed (version, locked version): {moved}"
    assert set(locked) == set(installed), f"locked, not pulled in: {sorted(set(locked) - set(installed))}"


def recipes(makefile: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    target = ""
    for line in makefile.splitlines():
        if line.startswith("\t") and target:
            found[target].append(line.strip())
        elif re.match(r"^[^\s#=]+:", line) and ":=" not in line:
            target = line.split(":", 1)[0]
            found[target] = []
    return found


def test_the_venvs_install_the_runtime_set_from_the_lock_with_hashes_required():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (definition,) = re.findall(r"^RUNTIME_INSTALL := (.*)$", makefile, re.MULTILINE)
    assert definition.split() == ["$(PIP_INSTALL)", "--require-hashes", "-r", "requirements.txt"]
    for venv in ("$(VENV)", "$(VENV)-313", "$(VENV)-bench"):
        installs = [line for line in recipes(makefile)[f"{venv}/.installed"] if "INSTALL)" in line]
        assert installs, venv
        assert installs[0].endswith("$(RUNTIME_INSTALL)"), (venv, installs)
        unhashed = [line for line in installs if re.search(r"-r requirements\.txt(\s|$)", line)]
        assert not unhashed, "the lock is installed only with hashes required"
    assert "-r ../requirements.txt" not in (ROOT / "bench" / "requirements.txt").read_text(encoding="utf-8")
