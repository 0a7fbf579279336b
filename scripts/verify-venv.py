"""Check a virtualenv that bootstrap.sh did not just build (a CI cache restored it) before any
of its code runs: exit 0 when it is what constraints.txt pins, 1 with the reasons otherwise.

Run it with the system interpreter in isolated mode (`python3 -I scripts/verify-venv.py VENV`):
it reads the environment's metadata and files, and imports nothing from it.

  - the interpreter is the one bootstrap would use, and the venv does not see system packages;
  - every installed distribution that constraints.txt pins has exactly the pinned version;
  - with --strict (CI): every installed distribution is pinned (pip, setuptools, wheel and this
    project itself excepted), so nothing was added;
  - with --files: every file a distribution's RECORD lists has the recorded sha256, and no
    importable file (.py, .pth, extension module) lies in site-packages that no RECORD lists.

What this cannot see is a writer who also rewrites RECORD; that is why CI never restores, for
a protected branch, a cache that merge-request code could have written (see README).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import os
import re
import sys
from pathlib import Path

UNPINNED = {"pip", "setuptools", "wheel", "mlops-gitops"}
# Files no RECORD lists by design: byte code (bootstrap deletes it; see there), the
# installer's own bookkeeping, and the editable install's finder of a developer checkout.
IMPORTABLE = (".py", ".pth", ".so", ".pyd")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(constraints: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            out[canonical(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return out


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def problems(
    venv: Path, constraints: Path, python: Path, *, check_files: bool, strict: bool
) -> list[str]:
    found: list[str] = []
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        return [f"{cfg} is missing"]
    settings = dict(line.split("=", 1) for line in cfg.read_text().splitlines() if "=" in line)
    settings = {k.strip(): v.strip() for k, v in settings.items()}
    if settings.get("include-system-site-packages", "false") != "false":
        found.append("pyvenv.cfg includes the system site-packages")
    if (venv / "bin/python").resolve() != python.resolve():
        found.append(f"bin/python is {(venv / 'bin/python').resolve()}, not {python.resolve()}")
    libs = sorted(venv.glob("lib/python3*/site-packages"))
    if len(libs) != 1:
        return [*found, f"expected one site-packages under {venv}/lib, found {len(libs)}"]
    site = libs[0]
    pinned = pins(constraints)
    listed: set[Path] = set()
    for dist in md.distributions(path=[str(site)]):
        name = canonical(dist.metadata["Name"] or "")
        if name in UNPINNED or (name not in pinned and not strict):
            pass
        elif pinned.get(name) != dist.version:
            want = pinned.get(name, "not pinned in constraints.txt")
            found.append(f"{name} {dist.version} is installed; constraints.txt: {want}")
        if not check_files:
            continue
        for entry in dist.files or []:
            path = Path(os.path.normpath(site / entry))
            listed.add(path)
            if entry.hash is None:
                continue
            if entry.hash.mode != "sha256":
                found.append(f"{path}: RECORD uses {entry.hash.mode}, not sha256")
            elif not path.is_file():
                found.append(f"{path} is missing")
            elif sha256(path) != entry.hash.value:
                found.append(f"{path} differs from its RECORD hash")
    if check_files:
        for path in site.rglob("*"):
            if path.suffix in IMPORTABLE and "__pycache__" not in path.parts and path not in listed:
                found.append(f"{path} belongs to no installed distribution")
    return found


def main(argv: list[str]) -> int:
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2 or flags - {"--files", "--strict"}:
        print("usage: verify-venv.py [--strict] [--files] VENV CONSTRAINTS", file=sys.stderr)
        return 2
    venv, constraints = Path(args[0]), Path(args[1])
    found = problems(
        venv,
        constraints,
        Path(sys.executable),
        check_files="--files" in flags,
        strict="--strict" in flags,
    )
    for line in found[:20]:
        print(f"verify-venv: {line}", file=sys.stderr)
    if len(found) > 20:
        print(f"verify-venv: ... and {len(found) - 20} more", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
