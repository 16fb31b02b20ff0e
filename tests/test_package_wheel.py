"""The wheel built from pyproject.toml holds every subpackage, module and data file, and works.

The sources (pyproject.toml and the four package trees, without build outputs) are copied to a
temporary directory and built there with `pip wheel --no-deps --no-build-isolation` (the venv's
setuptools; the checkout's build/ is not touched). Every file of the package trees (.py modules,
the alembic scripts, the .proto) must be in the wheel, nothing else may be; then the unpacked
wheel, ahead of the checkout on sys.path, generates the gRPC modules from its own .proto and
migrates a SQLite database with its own alembic scripts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
ROOTS = {  # package -> its tree in the checkout
    "xdpex": "control/xdpex",
    "xdpex_proto": "proto/xdpex_proto",
    "xdpex_traffic": "traffic/xdpex_traffic",
    "xdpex_engine": "engine/python/xdpex_engine",
    "xdpex_services": "services/xdpex_services",
}
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def source_files() -> set[str]:
    """Every file of the package trees, as its path inside the wheel."""
    out = set()
    for pkg, tree in ROOTS.items():
        root = TOP / tree
        for p in root.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                out.add(f"{pkg}/{p.relative_to(root).as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copy(TOP / "pyproject.toml", src)
    for tree in ROOTS.values():
        shutil.copytree(TOP / tree, src / tree, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("xdpex-*.whl")
    return whl


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if not n.split("/")[0].endswith(".dist-info")}
        entry = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    want = source_files()
    assert {"xdpex/migrations/script.py.mako", "xdpex/migrations/versions/0001_initial.py",
            "xdpex/proto/orderentry.proto", "xdpex/api/routes/orders.py",
            "xdpex_services/postgres.py", "xdpex_proto/journal.py"} <= want  # fmt: skip
    assert sorted(want - names) == [], "missing from the wheel"
    assert sorted(names - want) == [], "in the wheel but not in the package trees"
    assert "xdpex = xdpex.cli:main" in entry


def test_the_unpacked_wheel_runs_on_its_own_files(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    probe = (
        "import sys, xdpex, xdpex.pb, xdpex_proto.codec\n"
        "from xdpex.db import MIGRATIONS, make_engine, migrate\n"
        f"root = {str(site)!r}\n"
        "for m in (xdpex, xdpex.pb, xdpex_proto.codec):\n"
        "    assert m.__file__.startswith(root), m.__file__\n"
        "assert str(MIGRATIONS).startswith(root)\n"
        "assert xdpex.pb.orderentry_pb2.DESCRIPTOR.services_by_name['OrderEntry']\n"
        f"eng = make_engine('sqlite:///{tmp_path / 'x.db'}')\n"
        "migrate(eng)\n"
        "print(sorted(eng.dialect.get_table_names(eng.connect())))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "XDPEX_PB_DIR": str(tmp_path / "pb")}
    r = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "orders" in r.stdout and "alembic_version" in r.stdout, r.stdout
    assert (tmp_path / "pb" / "orderentry_pb2_grpc.py").exists()  # made from the wheel's .proto
