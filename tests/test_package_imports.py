"""Who imports whom, read from the source (ast), not from a running interpreter.

- xdpex_proto (proto/: codec, golden vectors, journal reader) imports none of the other packages.
- traffic/ (xdpex_traffic and the TRex scripts) never imports the control plane (xdpex) or the
  engine binding; it takes the codec from xdpex_proto (and private service instances, e.g. the
  HA lab's etcd, from xdpex_services, which imports none of the others).
- xdpex_services (services/: private PostgreSQL, Redis and etcd instances) imports no other
  package of ours.
- The control plane (xdpex) takes the codec and the journal reader from xdpex_proto; it imports
  xdpex_traffic only where it drives the traffic side itself, listed in REAL_NEEDS (the `xdpex`
  command's lab/pcap subcommands, `xdpex run` and `xdpex bench`, which bring up the veth lab and
  run the load generator). Every entry there must still be used, so the list cannot rot.
"""

from __future__ import annotations

import ast
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
OURS = ("xdpex", "xdpex_proto", "xdpex_traffic", "xdpex_engine", "xdpex_services")
# tree -> (package name or None for loose scripts, directory)
TREES = {
    "control": ("xdpex", TOP / "control" / "xdpex"),
    "proto": ("xdpex_proto", TOP / "proto" / "xdpex_proto"),
    "traffic": ("xdpex_traffic", TOP / "traffic" / "xdpex_traffic"),
    "trex": (None, TOP / "traffic" / "trex"),  # scripts run by TRex's own interpreter
    "engine": ("xdpex_engine", TOP / "engine" / "python" / "xdpex_engine"),
    "services": ("xdpex_services", TOP / "services" / "xdpex_services"),
}
# module of the control plane -> the xdpex_traffic modules it may import
REAL_NEEDS = {
    "xdpex.cli": {"xdpex_traffic.lab", "xdpex_traffic.pcap"},  # subcommands, by name
    "xdpex.run": {"xdpex_traffic.lab", "xdpex_traffic.wire"},
    "xdpex.runha": {"xdpex_traffic.wire"},  # xdpex run --ha drives the generator
    "xdpex.benchreport": {"xdpex_traffic.lab", "xdpex_traffic.wire", "xdpex_traffic.benchwire"},
    "xdpex.benchreport.scenarios": {"xdpex_traffic.lab", "xdpex_traffic.benchwire"},
    # the soak scenarios drive the lab, the injector and the generator against the whole system
    "xdpex.soak": {"xdpex_traffic.faults", "xdpex_traffic.lab", "xdpex_traffic.pcap",
                   "xdpex_traffic.wire"},
}


def _modules() -> dict[str, tuple[str, Path]]:
    """{dotted module name: (tree, file)} for every file of TREES."""
    out = {}
    for tree, (pkg, root) in TREES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([pkg, *parts] if pkg else [f"{tree}:{parts[0]}"])] = (tree, path)
    return out


MODULES = _modules()


def imports_of(path: Path, module: str) -> set[str]:
    """What a file imports of ours, as `package.module` (first two name parts): import
    statements with relative ones resolved, and strings that name one of our modules (what
    importlib.import_module and the `xdpex` command's SUBCOMMANDS table load)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level <= len(package), f"{path}: relative import leaves the package"
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names.add(name)
            names.update(f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in MODULES)
        elif isinstance(node, ast.Constant) and node.value in MODULES and "." in node.value:
            names.add(node.value)
    return {".".join(n.split(".")[:2]) for n in names if n.split(".")[0] in OURS}


def walk() -> dict[str, tuple[str, set[str]]]:
    """{module: (tree, what it imports of ours)}."""
    return {m: (tree, imports_of(path, m)) for m, (tree, path) in MODULES.items()}


def _pkg(name: str) -> str:
    return name.split(".")[0]


def offenders(trees: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        m: sorted(i for i in imps if _pkg(i) in forbidden)
        for m, (tree, imps) in walk().items()
        if tree in trees and any(_pkg(i) in forbidden for i in imps)
    }


def test_the_walk_sees_the_imports_it_checks():
    found = {m: imps for m, (_, imps) in walk().items()}
    assert "xdpex_proto.codec" in found["xdpex.persister"]
    assert "xdpex_proto.journal" in found["xdpex.publisher"]
    assert "xdpex_proto.codec" in found["xdpex_traffic.client"]
    assert "xdpex_proto.codec" in found["trex:run"]
    assert "xdpex.localdp" in found["xdpex.benchreport.scenarios"]  # a relative import
    assert "xdpex_traffic.pcap" in found["xdpex.cli"]  # a module named in a string
    assert offenders(("control",), ("xdpex_proto",))  # the check can fail


def test_xdpex_proto_imports_no_other_package_of_ours():
    assert offenders(("proto",), ("xdpex", "xdpex_traffic", "xdpex_engine")) == {}


def test_xdpex_services_imports_no_other_package_of_ours():
    assert offenders(("services",), ("xdpex", "xdpex_proto", "xdpex_traffic", "xdpex_engine")) == {}


def test_traffic_never_imports_the_control_plane():
    assert offenders(("traffic", "trex"), ("xdpex", "xdpex_engine")) == {}


def test_control_imports_traffic_only_where_it_drives_traffic():
    used = {
        m: {i for i in imps if _pkg(i) == "xdpex_traffic"}
        for m, (tree, imps) in walk().items()
        if tree == "control" and any(_pkg(i) == "xdpex_traffic" for i in imps)
    }
    extra = {m: sorted(t - REAL_NEEDS.get(m, set())) for m, t in used.items()}
    assert not {m: t for m, t in extra.items() if t}, "control imports xdpex_traffic"
    stale = {m: sorted(t - used.get(m, set())) for m, t in REAL_NEEDS.items()}
    assert not {m: t for m, t in stale.items() if t}, "REAL_NEEDS lists imports that are gone"
