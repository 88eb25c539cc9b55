"""Exit 0 when every dependency in pyproject.toml (runtime and the `dev` extra) is installed at
a version its range allows; otherwise print what is missing and exit 1.

`make` uses it to decide whether `.venv` needs `pip install`, so an up-to-date environment is
never reinstalled (no network needed) and a changed pyproject.toml is picked up.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # a fresh venv: pip brings packaging along with the install that follows
    print("packaging is not installed yet")
    sys.exit(1)

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
problems = []
for line in wanted:
    requirement = Requirement(line)
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        problems.append(f"{requirement.name} is not installed")
        continue
    if not requirement.specifier.contains(installed, prereleases=True):
        problems.append(f"{requirement.name} {installed} does not satisfy {requirement.specifier}")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
