"""Build the contracts wheel: ``python contracts/build.py [DIST_DIR]`` (``make dist``).

The package is assembled from ``shared/contracts`` (one source for the services and the
wheel): its modules are copied into ``build/contracts-wheel/src/crm_backbone_contracts``
with ``shared.contracts`` renamed, with the committed JSON Schemas, this folder's
``pyproject.toml`` and ``README.md``; then pip builds the wheel. The code that writes the
repository's documents (AsyncAPI, schema export) stays out. Prints the wheel's path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "shared" / "contracts"
STAGE = ROOT / "build" / "contracts-wheel"
PACKAGE = "crm_backbone_contracts"
MODULES = (
    "__init__",
    "bus",
    "categories",
    "commands",
    "crm",
    "envelope",
    "errors",
    "events",
    "identity",
    "kinds",
    "mailsync",
    "notification",
    "registry",
    "samples",
    "staff",
    "types",
    "version",
)
_IMPORT = re.compile(r"\bshared\.contracts\b")


def assemble(stage: Path = STAGE) -> Path:
    if stage.exists():
        shutil.rmtree(stage)
    package = stage / "src" / PACKAGE
    package.mkdir(parents=True)
    for module in MODULES:
        text = (SOURCE / f"{module}.py").read_text()
        (package / f"{module}.py").write_text(_IMPORT.sub(PACKAGE, text))
    shutil.copytree(SOURCE / "schemas", package / "schemas")
    (package / "py.typed").write_text("")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / "contracts" / name, stage / name)
    return stage


def build(dist: Path) -> Path:
    stage = assemble()
    dist.mkdir(parents=True, exist_ok=True)
    before = set(dist.glob(f"{PACKAGE}-*.whl"))
    subprocess.run(  # noqa: S603 - our own interpreter and paths
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(stage)],
        check=True,
    )
    version = _version(stage)
    wheel = dist / f"{PACKAGE}-{version}-py3-none-any.whl"
    if not wheel.exists():
        found = sorted(set(dist.glob("*.whl")) - before)
        raise SystemExit(f"no {wheel.name} in {dist} (found {found})")
    return wheel


def _version(stage: Path) -> str:
    text = (stage / "src" / PACKAGE / "version.py").read_text()
    found = re.search(r'^CONTRACT_VERSION = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise SystemExit("no CONTRACT_VERSION in version.py")
    return found.group(1)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"
    sys.stdout.write(f"{build(target.resolve())}\n")
