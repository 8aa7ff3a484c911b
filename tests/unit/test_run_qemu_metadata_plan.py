"""``run qemu --metadata``: the qemu command line (user network on 169.254.0.0/16, one ``guestfwd`` per
metadata address running the relay) and what ``prepare`` checks and writes."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.run.metaservice import instance_from_json, instance_to_json, socket_directory
from linuxkit.run.qemu import RELAY, Boot, QemuConfig, RunOptions, metadata_netdev, prepare, qemu_argv

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcGr8l2kvTU2wVTQc7kYhtRl0ZgIDDgCMM6Ac9kz2yD me@host"


def _cfg(tmp_path: Path, **kw: object) -> QemuConfig:
    base: dict[str, object] = {
        "boot": Boot("kernel", str(tmp_path / "vm"), str(tmp_path / "vm")),
        "state": tmp_path / "vm-state",
        "accel": "tcg",
        "cmdline": "console=ttyS0",
        "netdev": "user,id=t0",
        "mac": "02:00:00:00:00:01",
        "vm_uuid": "11111111-2222-3333-4444-555555555555",
        "python": "/usr/bin/python3",
    }
    base.update(kw)
    return QemuConfig(**base)  # type: ignore[arg-type]


def test_netdev_forwards_the_metadata_address_to_the_relay(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, metadata_socket="/tmp/linuxkit-md-x/http.sock", metadata_addresses=("169.254.169.254",))
    argv = qemu_argv("qemu-system-x86_64", cfg)
    netdev = argv[argv.index("-netdev") + 1]
    assert netdev == (
        "user,id=t0,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:"
        f"/usr/bin/python3 -I -S {RELAY} /tmp/linuxkit-md-x/http.sock"
    )
    assert RELAY.endswith("linuxkit/run/mdrelay.py")


def test_netdev_escapes_commas_and_quotes_spaces(tmp_path: Path) -> None:
    """qemu's option parser takes ``,,`` for a comma; slirp then splits the command as a shell would."""
    cfg = _cfg(
        tmp_path,
        metadata_socket="/tmp/a b,c/http.sock",
        metadata_addresses=("169.254.42.42",),
        publish=[],
    )
    netdev = metadata_netdev(cfg)
    command = netdev.split("-cmd:", 1)[1].replace(",,", ",")
    assert shlex.split(command) == ["/usr/bin/python3", "-I", "-S", RELAY, "/tmp/a b,c/http.sock"]
    assert "guestfwd=tcp:169.254.42.42:80-cmd:" in netdev


def test_other_metadata_addresses_lead_to_no_service(tmp_path: Path) -> None:
    """Else slirp would take them out to the host's network (on a cloud VM: the host's own metadata)."""
    cfg = _cfg(tmp_path, metadata_blocked=("169.254.169.254", "169.254.42.42"))
    netdev = metadata_netdev(cfg)
    assert netdev == (
        f",net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:/usr/bin/python3 -I -S {RELAY} /dev/null"
        f",guestfwd=tcp:169.254.42.42:80-cmd:/usr/bin/python3 -I -S {RELAY} /dev/null"
    )


def test_no_metadata_leaves_the_netdev_alone(tmp_path: Path) -> None:
    argv = qemu_argv("qemu", _cfg(tmp_path))
    assert argv[argv.index("-netdev") + 1] == "user,id=t0"


def _image(tmp_path: Path) -> Path:
    for suffix in ("-kernel", "-initrd.img"):
        (tmp_path / f"md-test{suffix}").write_bytes(b"x")
    (tmp_path / "md-test-cmdline").write_text("console=ttyS0")
    return tmp_path / "md-test"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return _image(tmp_path)


def _opts(image: Path, **kw: object) -> RunOptions:
    return RunOptions(path=str(image), qemu=sys.executable, accel="tcg", arch="x86_64", **kw)  # type: ignore[arg-type]


def test_prepare_http_provider(image: Path, tmp_path: Path) -> None:
    key = tmp_path / "id.pub"
    key.write_text(f"# my key\n{KEY}\n\n")
    _, cfg = prepare(_opts(image, metadata="aws", data='{"a": 1}', ssh_keys=(str(key),)))
    assert cfg.provider == "aws" and cfg.metadata_addresses == ("169.254.169.254",)
    assert cfg.metadata_blocked == ("169.254.42.42",)
    assert cfg.instance is not None
    assert cfg.instance.hostname == "md-test" and cfg.instance.ssh_keys == (KEY,)
    assert cfg.instance.userdata == b'{"a": 1}' and cfg.instance.mac == cfg.mac
    # the data goes to the service, not to a data CD; the instance id stays with the state directory
    assert cfg.isos == [] and not (cfg.state / "data.iso").exists()
    first = (cfg.state / "instance-id").read_text()
    _, again = prepare(_opts(image, metadata="gcp", hostname="web-1.example"))
    assert again.instance is not None and again.instance.uuid == first and again.instance.hostname == "web-1.example"
    assert again.instance.userdata is None


def test_prepare_cd_providers(image: Path) -> None:
    _, cfg = prepare(_opts(image, metadata="openstack-configdrive", data="hi", networking="none"))
    assert cfg.metadata_blocked == ()
    assert cfg.provider == "" and cfg.isos == [str(cfg.state / "metadata.iso")]
    assert (cfg.state / "metadata.iso").read_bytes()[0x8028:0x8030] == b"config-2"
    _, cfg = prepare(_opts(image, metadata="cdrom", data="hi", detached=True))
    assert (cfg.state / "metadata.iso").read_bytes()[0x8028:0x802E] == b"cidata"
    assert cfg.metadata_addresses == () and cfg.metadata_blocked == ("169.254.169.254", "169.254.42.42")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"metadata": "ec2"}, "unknown metadata provider"),
        ({"ssh_keys": ("k.pub",)}, "answered by --metadata"),
        ({"metadata": "aws", "networking": "none"}, "user network"),
        ({"metadata": "aws", "hostname": "bad_name"}, "not a valid host name"),
        ({"metadata": "aws", "ssh_keys": ("/nonexistent.pub",)}, "cannot read SSH public key"),
    ],
)
def test_prepare_refuses(image: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        prepare(_opts(image, **kw))


def test_prepare_refuses_a_private_key(image: Path, tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    with pytest.raises(UserError, match="does not hold SSH public keys"):
        prepare(_opts(image, metadata="aws", ssh_keys=(str(key),)))


def test_mdhost_serves_while_its_child_runs(tmp_path: Path) -> None:
    """The background half of ``--detached --metadata``: it serves the provider while the program it runs
    (qemu; here a Python that connects through the relay as qemu would) lives, then cleans up."""
    _, inst_cfg = prepare(_opts(_image(tmp_path), metadata="aws", data="ud", hostname="bg"))
    assert inst_cfg.instance is not None
    assert instance_from_json(instance_to_json(inst_cfg.instance)) == inst_cfg.instance
    directory = socket_directory()
    relay = [sys.executable, "-I", "-S", RELAY, f"{directory}/http.sock"]
    child = (
        "import subprocess, sys; "
        f"p = subprocess.run({relay!r}, input=sys.argv[1].encode(), capture_output=True); "
        "sys.stdout.buffer.write(p.stdout); sys.exit(7)"
    )
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-c", child, "GET /latest/meta-data/hostname HTTP/1.0\r\n\r\n"],
                "provider": "aws",
                "instance": instance_to_json(inst_cfg.instance),
                "log": str(tmp_path / "md.log"),
                "directory": directory,
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "linuxkit.run.mdhost", str(spec)], capture_output=True, timeout=60, check=False
    )
    assert out.returncode == 7, out.stderr
    assert out.stdout.startswith(b"HTTP/1.0 200") and out.stdout.endswith(b"\r\n\r\nbg")
    assert (tmp_path / "md.log").read_text() == "GET /latest/meta-data/hostname 200\n"
    assert not spec.exists() and not Path(directory).exists()
