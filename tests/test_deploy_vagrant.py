"""The two-VM lab Vagrantfile, checked with Debian's vagrant (no provider or plugin needed).

`vagrant validate -p` checks everything but the provider blocks, with plugins and without any
(VAGRANT_NO_PLUGINS=1: what a host with plain Vagrant sees). provisioning/lab/vagrant-config.rb
runs Vagrant's own validation with a provider's checks included (VirtualBox built in, libvirt
through Debian's vagrant-libvirt plugin, which setup.sh installs) and prints what Vagrant resolved,
so the test can see the VMs, their NICs, CPUs, memory and provisioning steps. The VMs are never
started here: TRex installs only inside the trafgen VM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TOP = Path(__file__).resolve().parent.parent


@pytest.fixture
def vagrant_env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("vagrant") is None or shutil.which("ruby") is None:
        pytest.fail("vagrant and ruby are missing: provisioning/setup.sh installs them")
    env = dict(os.environ)
    # Machine state and Vagrant's home stay out of the work tree and the user's home.
    env["VAGRANT_DOTFILE_PATH"] = str(tmp_path / "dot")
    env["VAGRANT_HOME"] = str(tmp_path / "home")
    env.pop("VAGRANT_DEFAULT_PROVIDER", None)
    for k in [k for k in env if k.startswith("XDPEX_")]:
        del env[k]
    return env


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=TOP, env=env, capture_output=True, text=True, timeout=120)


def resolved(env: dict[str, str], provider: str = "virtualbox") -> dict[str, Any]:
    r = run(["ruby", "provisioning/lab/vagrant-config.rb", provider], env)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


@pytest.mark.parametrize("plugins", ["with plugins", "plugin-free"])
def test_vagrant_validate_passes_without_a_provider(
    vagrant_env: dict[str, str], plugins: str
) -> None:
    env = dict(vagrant_env, VAGRANT_NO_PLUGINS="1") if plugins == "plugin-free" else vagrant_env
    r = run(["vagrant", "validate", "--ignore-provider"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Vagrantfile validated successfully." in r.stdout
    assert "gateway" in r.stdout and "trafgen" in r.stdout
    assert not (TOP / ".vagrant").exists()


def test_two_vms_on_one_private_virtio_network(vagrant_env: dict[str, str]) -> None:
    cfg = resolved(vagrant_env)
    assert sorted(cfg) == ["gateway", "trafgen"]
    ips = {}
    for name, vm in cfg.items():
        assert vm["provider_config"].endswith("ProviderVirtualBox::Config")
        assert vm["box"].startswith("debian/")
        lab = [n for n in vm["networks"] if n["type"] == "private_network"]
        assert len(lab) == 1, vm["networks"]
        net = lab[0]
        assert net["nic_type"] == "virtio"
        assert net["virtualbox__intnet"] == "xdpex-lab"
        assert net["libvirt__network_name"] == "xdpex-lab"
        assert net["libvirt__dhcp_enabled"] is False
        ips[name] = net["ip"]
        # The project is synced by rsync (no guest additions needed) to /xdpex.
        synced = {f["guest"]: f for f in vm["synced_folders"]}
        assert synced["/xdpex"]["type"] == "rsync" and not synced["/xdpex"]["disabled"]
    assert ips == {"gateway": "10.77.10.10", "trafgen": "10.77.10.20"}


def test_cpu_memory_and_provisioning(vagrant_env: dict[str, str]) -> None:
    cfg = resolved(vagrant_env)
    for vm in cfg.values():
        custom = vm["customize"]
        assert ["modifyvm", "id", "--cpus", 4] in custom
        assert ["modifyvm", "id", "--memory", "4096"] in custom
        assert ["modifyvm", "id", "--nicpromisc2", "allow-all"] in custom
    steps = {name: [p["name"] for p in vm["provisioners"]] for name, vm in cfg.items()}
    # Both run the same setup script as every other machine; only trafgen gets TRex.
    assert steps == {"gateway": ["hugepages", "setup"], "trafgen": ["hugepages", "setup", "trex"]}
    trex = cfg["trafgen"]["provisioners"][2]
    assert trex["path"] == "provisioning/lab/install-trex.sh"
    assert trex["env"]["TREX_IP"] == "10.77.10.20"
    assert trex["env"]["TREX_GATEWAY"] == "10.77.10.10"


def test_environment_overrides_and_bad_values(vagrant_env: dict[str, str]) -> None:
    env = dict(vagrant_env, XDPEX_GW_CPUS="2", XDPEX_TG_MEM="6144")
    cfg = resolved(env)
    assert ["modifyvm", "id", "--cpus", 2] in cfg["gateway"]["customize"]
    assert ["modifyvm", "id", "--memory", "6144"] in cfg["trafgen"]["customize"]
    bad = run(["vagrant", "validate", "-p"], dict(vagrant_env, XDPEX_GW_MEM="4g"))
    assert bad.returncode != 0
    assert 'XDPEX_GW_MEM="4g" is not a whole number' in bad.stdout + bad.stderr


def test_libvirt_block_validates_with_the_plugin(vagrant_env: dict[str, str]) -> None:
    if "vagrant-libvirt" not in run(["vagrant", "plugin", "list"], vagrant_env).stdout:
        pytest.fail("the vagrant-libvirt plugin is missing: provisioning/setup.sh installs it")
    cfg = resolved(vagrant_env, "libvirt")
    for name, vm in cfg.items():
        assert vm["provider_config"].endswith("ProviderLibvirt::Config"), name
        assert vm["settings"] == {"cpus": 4, "memory": 4096, "cpu_mode": "host-passthrough",
                                  "nic_model_type": "virtio"}  # fmt: skip
        (lab,) = [n for n in vm["networks"] if n["type"] == "private_network"]
        assert lab["libvirt__driver_queues"] == 8  # 2 queue pairs per vCPU for native XDP
        assert lab["libvirt__forward_mode"] == "none"
    # Without the plugin the libvirt block is simply not evaluated, and the tool says why.
    r = run(["ruby", "provisioning/lab/vagrant-config.rb", "libvirt"],
            dict(vagrant_env, VAGRANT_NO_PLUGINS="1"))  # fmt: skip
    assert r.returncode == 1
    assert "provider 'libvirt' is not installed" in r.stderr


def test_trex_installer_refuses_to_run_without_its_settings() -> None:
    # The installer runs only in VM provisioning; without its settings it stops before any change.
    script = TOP / "provisioning" / "lab" / "install-trex.sh"
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREX_")}
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "TREX_IP: the lab address of this host is required" in r.stderr
