"""``run qemu --metadata PROVIDER`` for real: a small system with pkg/metadata asking one provider
(tests/data/guest/metadata.yml), booted under qemu (TCG) once per provider with JSON user data, an SSH key
and a host name; the console must show the file the user data made under /run/config, the key and the
host name, and ``STATE/metadata.log`` how the guest asked (e.g. IMDSv2 tokens).

A provider is added by listing it in ``BOOTS``; ``NOT_YET`` says why one is not booted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from tests.conftest import ROOT
from tests.integration.test_guest_boot import _env, lk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEMPLATE = ROOT / "tests" / "data" / "guest" / "metadata.yml"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcGr8l2kvTU2wVTQc7kYhtRl0ZgIDDgCMM6Ac9kz2yD md-test"
USERDATA = {"app": {"entries": {"greeting": {"content": "METADATA-OK"}}}}


class Boot(NamedTuple):
    served: str  # run qemu --metadata
    guest: str  # the provider pkg/metadata is told to ask
    provider: str  # what the guest writes to /run/config/provider (case-insensitive, a part of it)
    log: tuple[str, ...] = ()  # lines STATE/metadata.log must hold
    keys: bool = True  # the SSH key reaches /run/config/ssh/authorized_keys
    hostname_in_userdata: bool = False  # the provider has no host name field: the user data gives it
    detached: bool = False  # run qemu --detached (the service then runs in a background process)


TOKEN = "X-aws-ec2-metadata-token"
BOOTS = [
    # IMDSv2: tokens required, so every answer the guest got was with a token
    Boot(
        "aws-v2",
        "aws",
        "aws",
        (f"PUT /latest/api/token 200 [{TOKEN}-ttl-seconds]", f"GET /latest/user-data 200 [{TOKEN}]"),
    ),
    # IMDSv1: no token API (405), the guest falls back to plain GETs; --detached
    Boot("aws-v1", "aws", "aws", ("GET /latest/meta-data/hostname 200", "GET /latest/user-data 200"), detached=True),
    Boot("gcp", "gcp", "gcp", ("GET /computeMetadata/v1/instance/attributes/user-data 200 [Metadata-Flavor]",)),
    Boot(
        "azure",
        "azure",
        "azure",
        ("GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text 200 [Metadata]",),
    ),
    Boot("openstack", "openstack", "openstack", ("GET /openstack/latest/user_data 200",)),
    Boot("hetzner", "hetzner", "hetzner", ("GET /hetzner/v1/userdata 200",)),
    Boot("digitalocean", "digitalocean", "digitalocean", ("GET /metadata/v1/user-data 200",)),
    Boot("vultr", "vultr", "vultr", ("GET /latest/user-data 200",)),
    Boot("scaleway", "scaleway", "scaleway", ("GET /user_data/cloud-init 200",)),
    # ConfigDrive CD (label config-2) found by the openstack provider once its service does not answer
    Boot("openstack-configdrive", "openstack", "configdrive"),
    # NoCloud CD (label cidata): user-data read from the CD; the host name from the user data's tree
    Boot("cdrom", "cdrom", "cdrom", keys=False, hostname_in_userdata=True),
]
#: listed, not booted: why
NOT_YET: dict[str, str] = {}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metadata-cache")


def _build(cache: Path, work: Path, guest: str) -> Path:
    """The test system asking ``guest`` (the YAML beside the template: its @pkg: paths are relative)."""
    yml = TEMPLATE.with_name(f".metadata-{guest}-{os.getpid()}.yml")
    yml.write_text(TEMPLATE.read_text().replace("METADATA_PROVIDER", guest))
    try:
        lk(cache, "build", "--dir", work, "--name", f"md-{guest}", yml)
    finally:
        yml.unlink()
    return work / f"md-{guest}"


@pytest.mark.parametrize(
    "boot",
    [
        *BOOTS,
        *(pytest.param(Boot(p, "", ""), marks=pytest.mark.skip(reason=why)) for p, why in NOT_YET.items()),
    ],
    ids=[b.served for b in BOOTS] + list(NOT_YET),
)
def test_guest_reads_the_emulated_metadata_service(cache: Path, tmp_path: Path, boot: Boot) -> None:
    start = time.monotonic()
    image = _build(cache, tmp_path, boot.guest)
    built = time.monotonic() - start
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    hostname = f"md-{boot.served}"
    state = tmp_path / "state"
    userdata = {**USERDATA, "hostname": {"content": hostname}} if boot.hostname_in_userdata else USERDATA
    argv = [
        sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--accel", "tcg", "--mem", "512",
        "--state", str(state), "--metadata", boot.served, "--hostname", hostname, "--ssh-key", str(key),
        "--data", json.dumps(userdata), str(image),
    ]  # fmt: skip
    if boot.detached:
        argv.insert(argv.index("--state"), "--detached")
    proc = subprocess.run(argv, capture_output=True, env=_env(cache), timeout=240, check=False)
    console = proc.stdout.decode(errors="replace")
    if boot.detached:  # the console goes to STATE/console.log; qemu removes its pid file when it ends
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        deadline = time.monotonic() + 240
        seen = False  # qemu writes its pid file once it runs
        while not seen or (state / "qemu.pid").exists():
            seen = seen or (state / "qemu.pid").exists()
            assert time.monotonic() < deadline, "the detached VM did not start and power off"
            time.sleep(0.2)
        time.sleep(0.5)  # the background process stops the service once qemu is gone
        console = (state / "console.log").read_text(errors="replace")
        assert not (state / "metadata-run.json").exists()
    booted = time.monotonic() - start - built
    log = (state / "metadata.log").read_text() if (state / "metadata.log").exists() else ""
    said = f"{console[-4000:]}\n--- stderr\n{proc.stderr.decode(errors='replace')[-2000:]}\n--- metadata.log\n{log}"
    print(f"{boot.served}: build {built:.1f}s, boot to power-off {booted:.1f}s, {len(log.splitlines())} requests")
    assert proc.returncode == 0, said
    found = re.search(r"MDCHECK provider=(.*) greeting=(.*)", console)
    assert found is not None, said
    assert boot.provider.lower() in found[1].lower() and found[2].strip() == "METADATA-OK", said
    assert f"MDCHECK hostname={hostname}" in console, said  # GCP's is the FQDN: HOSTNAME.ZONE.c.PROJECT.internal
    if boot.keys:
        assert f"keys={KEY}" in console, said
    for line in boot.log:
        assert line in log.splitlines(), said
