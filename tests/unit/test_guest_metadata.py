"""pkg/metadata's script under real busybox sh, against fake metadata services on local sockets.

Each provider's requests are checked against what its documentation asks for (the expected method, path and
headers below are written from the providers' pages, cited at each test, not from the script); the script's
`METADATA_HOSTS` hook only changes where a connection goes, so the `Host:` header still names the documented
service. Disks (cdrom, NoCloud, ConfigDrive) and VMware's `vmware-rpctool` are fakes at the command boundary.
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.guest_harness import BUSYBOX, REPO

SCRIPT = REPO / "pkg" / "metadata" / "files" / "usr" / "bin" / "metadata"
NC = Path("/bin/nc.openbsd")
JQ = Path("/usr/bin/jq")

pytestmark = pytest.mark.skipif(
    not (BUSYBOX.exists() and NC.exists() and JQ.exists()),
    reason="needs /bin/busybox (busybox-static), /bin/nc.openbsd (netcat-openbsd) and /usr/bin/jq (jq)",
)

# every host name the script may ask; unless a test serves it, each goes to a closed port (refused at once)
HOSTS = ("169.254.169.254", "metadata.google.internal", "169.254.42.42", "metaldata")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtest test@example"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQtest other@example"
TREE = {
    "app": {"entries": {"greeting": {"content": "hello\n"}, "secret": {"perm": "0600", "content": "s"}}},
    "hostname": {"content": "from-userdata"},
}


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    client_port: int

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


Answer = tuple[int, bytes] | Callable[[Request], tuple[int, bytes]]


@dataclass
class FakeService:
    """A metadata service on 127.0.0.1: answers from `routes` (path with query → answer), logs every request."""

    routes: Mapping[str, Answer] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)  # paths answered only after the client has given up
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    tls: ssl.SSLContext | None = None

    def start(self) -> FakeService:
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def handle_any(self) -> None:
                req = Request(
                    self.command, self.path, self.request_version, list(self.headers.items()), self.client_address[1]
                )
                service.requests.append(req)
                if self.path in service.hang:
                    time.sleep(4)
                answer = service.routes.get(self.path, (404, b"not found\n"))
                status, body = answer(req) if callable(answer) else answer
                try:
                    self.send_response(status)
                    for k, v in service.extra_headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (a timeout test)
                    pass

            do_GET = do_PUT = do_POST = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def get(self, path: str) -> Request:
        found = [r for r in self.requests if r.path == path]
        assert found, f"{path} was not asked; asked: {self.paths()}"
        return found[0]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    config: Path
    hostnames: list[str]
    elapsed: float

    def read(self, name: str) -> str:
        return (self.config / name).read_text()

    def mode(self, name: str) -> int:
        return (self.config / name).stat().st_mode & 0o7777


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.services: dict[str, FakeService] = {}
        self.dead = closed_port()
        (tmp / "dev").mkdir()
        (tmp / "sys").mkdir()  # stands for /sys/class/block
        self.labels: dict[str, str] = {}  # file system label → device, for the fake findfs
        self.disks = tmp / "disks"  # disks/<device name>/ holds what the fake mount shows
        self.disks.mkdir()
        self.rpctool: Path | None = None
        self.equinix_url = f"https://127.0.0.1:{self.dead}"
        self._stub("sethostname", 'echo "$1" >>"$STUB_DIR/hostnames"\n')
        # findfs LABEL=L: the device, as busybox's (the image's busybox has no blkid)
        self._stub("findfs", 'grep "^$1 " "$STUB_DIR/labels.txt" | cut -d" " -f2 | grep . || exit 1\n')
        # mount -t TYPE -o ro DEV DIR: shows disks/<basename DEV>/ at DIR (a copy) when TYPE is the disk's
        self._stub(
            "mount",
            'echo "mount $*" >>"$STUB_DIR/mounts"\n'
            'd=$STUB_DIR/../disks/$(basename "$5")\n[ -d "$d" ] || exit 32\n'
            '[ "$(cat "$d.type")" = "$2" ] || exit 32\ncp -r "$d/." "$6/"\n',
        )
        self._stub("umount", 'rm -rf "$1"/* "$1"/.[!.]*\n')

    def _stub(self, name: str, body: str) -> Path:
        stubs = self.tmp / "stubs"
        stubs.mkdir(exist_ok=True)
        path = stubs / name
        path.write_text(f"#!{BUSYBOX} sh\n{body}")
        path.chmod(0o755)
        return path

    def serve(self, host: str, service: FakeService) -> FakeService:
        self.services[host] = service.start()
        return service

    def disk(self, device: str, files: dict[str, str | bytes], fstype: str = "iso9660") -> None:
        root = self.disks / Path(device).name
        root.mkdir(parents=True, exist_ok=True)
        (self.disks / f"{root.name}.type").write_text(fstype)
        for name, content in files.items():
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content.encode() if isinstance(content, str) else content)

    def block(self, name: str, iso9660: bool) -> Path:
        """A block device in the fake /sys/class/block and /dev: ISO9660's "CD001" at byte 32769, or zeros."""
        (self.tmp / "sys" / name).mkdir()
        dev = self.tmp / "dev" / name
        dev.write_bytes(bytes(32769) + (b"CD001" if iso9660 else bytes(5)) + bytes(100))
        return dev

    def fake_rpctool(self, values: dict[str, str]) -> None:
        lines = "".join(f'"info-get {k}") printf "%s\\n" {json.dumps(v)} ;;\n' for k, v in values.items())
        self.rpctool = self._stub(
            "vmware-rpctool",
            f'echo "$1" >>"$STUB_DIR/rpc"\ncase "$1" in\n{lines}*) echo "No value found"; exit 1 ;;\nesac\n',
        )

    def run(self, *args: str, timeout_s: str = "1", **env: str) -> Run:
        for s in self.services.values():
            assert s.port
        hosts = " ".join(f"{h}=127.0.0.1:{self.services[h].port if h in self.services else self.dead}" for h in HOSTS)
        (self.tmp / "stubs" / "labels.txt").write_text("".join(f"LABEL={k} {v}\n" for k, v in self.labels.items()))
        config = self.tmp / "config"
        stubs = self.tmp / "stubs"
        full = {
            "PATH": "/usr/bin:/bin",
            "STUB_DIR": str(stubs),
            "METADATA_CONFIG": str(config),
            "METADATA_TMP": str(self.tmp / "t"),
            "METADATA_HOSTNAME": str(stubs / "sethostname"),
            "METADATA_HOSTS": hosts,
            "METADATA_TIMEOUT": timeout_s,
            "METADATA_NC": str(NC),
            "METADATA_RPCTOOL": str(self.rpctool or self.tmp / "no-rpctool"),
            "METADATA_FINDFS": str(stubs / "findfs"),
            "METADATA_SYSBLOCK": str(self.tmp / "sys"),
            "METADATA_MOUNT": str(stubs / "mount"),
            "METADATA_UMOUNT": str(stubs / "umount"),
            "METADATA_DEV": str(self.tmp / "dev"),
            "METADATA_CD_TRIES": "1",
            "METADATA_EQUINIX_URL": self.equinix_url,
            **env,
        }
        start = time.monotonic()
        proc = subprocess.run(
            [str(BUSYBOX), "sh", str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=60, check=False
        )
        elapsed = time.monotonic() - start
        hn = stubs / "hostnames"
        return Run(proc, config, hn.read_text().split() if hn.exists() else [], elapsed)

    def stop(self) -> None:
        for s in self.services.values():
            s.stop()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.stop()


def ok(body: str | bytes) -> tuple[int, bytes]:
    return 200, body.encode() if isinstance(body, str) else body


def assert_tree(run: Run) -> None:
    assert run.read("app/greeting") == "hello\n"
    assert run.mode("app/greeting") == 0o644 and run.mode("app") == 0o755
    assert run.read("app/secret") == "s" and run.mode("app/secret") == 0o600
    assert run.read("hostname") == "from-userdata"
    assert run.hostnames == ["from-userdata"]


# --- aws ------------------------------------------------------------------------------------------------------
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html and
# .../configuring-instance-metadata-service.html: IMDSv2 is `PUT /latest/api/token` with
# `X-aws-ec2-metadata-token-ttl-seconds` (1..21600), then each GET carries `X-aws-ec2-metadata-token`; when
# tokens are required, a GET without one is answered 401. Categories: /latest/meta-data/hostname,
# local-ipv4, public-ipv4, instance-id, instance-type, placement/availability-zone, local-hostname,
# public-keys/0/openssh-key; user data at /latest/user-data.
AWS_META = {
    "hostname": "ip-10-0-0-5.ec2.internal",
    "local-ipv4": "10.0.0.5",
    "public-ipv4": "203.0.113.5",
    "instance-id": "i-0123456789abcdef0",
    "instance-type": "t3.micro",
    "placement/availability-zone": "eu-west-1a",
    "local-hostname": "ip-10-0-0-5.eu-west-1.compute.internal",
    "public-keys/0/openssh-key": KEY + "\n",
}


AWS_TOKEN = "AQAEAFakeToken_-=="


def aws_service(token_required: bool, token_ok: bool = True) -> FakeService:
    token = AWS_TOKEN

    def guarded(body: str) -> Answer:
        def answer(req: Request) -> tuple[int, bytes]:
            sent = req.header("X-aws-ec2-metadata-token")
            if sent is not None and sent != token:
                return 401, b""
            if token_required and sent is None:
                return 401, b""
            return ok(body)

        return answer

    routes: dict[str, Answer] = {f"/latest/meta-data/{k}": guarded(v) for k, v in AWS_META.items()}
    routes["/latest/user-data"] = guarded(json.dumps(TREE))
    if token_ok:
        routes["/latest/api/token"] = lambda req: (
            ok(token) if req.method == "PUT" and req.header("X-aws-ec2-metadata-token-ttl-seconds") else (400, b"")
        )
    else:
        routes["/latest/api/token"] = (403, b"")
    return FakeService(routes=routes)


def test_aws_imdsv2_token_then_every_get_carries_it(env: Env) -> None:
    svc = env.serve("169.254.169.254", aws_service(token_required=True))
    run = env.run("aws")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    first = svc.requests[0]
    assert (first.method, first.path) == ("PUT", "/latest/api/token")
    assert 1 <= int(first.header("X-aws-ec2-metadata-token-ttl-seconds") or 0) <= 21600
    assert first.header("Host") == "169.254.169.254"
    gets = svc.requests[1:]
    assert gets and all(r.method == "GET" for r in gets)
    assert all(r.header("X-aws-ec2-metadata-token") == AWS_TOKEN for r in gets)
    assert all(r.header("Host") == "169.254.169.254" for r in gets)
    assert gets[0].path == "/latest/meta-data/hostname"
    assert {r.path for r in gets} >= {f"/latest/meta-data/{k}" for k in AWS_META} | {"/latest/user-data"}
    assert run.read("provider") == "AWS"
    # upstream's file names
    assert run.read("local_ipv4") == "10.0.0.5" and run.read("public_ipv4") == "203.0.113.5"
    assert run.read("instance_id") == "i-0123456789abcdef0" and run.read("instance_type") == "t3.micro"
    assert run.read("availability_zone") == "eu-west-1a"
    assert run.read("local_hostname") == "ip-10-0-0-5.eu-west-1.compute.internal"
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert run.mode("ssh/authorized_keys") == 0o600
    assert json.loads(run.read("userdata")) == TREE
    assert_tree(run)  # the JSON tree's hostname file, written after the provider's, wins (as upstream)


def test_aws_falls_back_to_imdsv1_when_the_token_put_fails(env: Env) -> None:
    svc = env.serve("169.254.169.254", aws_service(token_required=False, token_ok=False))
    run = env.run("aws")
    assert run.read("provider") == "AWS"
    assert svc.requests[0].method == "PUT"
    gets = svc.requests[1:]
    assert all(r.method == "GET" and r.header("X-aws-ec2-metadata-token") is None for r in gets)
    assert run.read("local_ipv4") == "10.0.0.5"


def test_aws_put_that_never_answers_times_out_then_imdsv1(env: Env) -> None:
    svc = aws_service(token_required=False)
    svc.hang = {"/latest/api/token"}
    env.serve("169.254.169.254", svc)
    run = env.run("aws")
    assert run.read("provider") == "AWS"
    assert 0.9 < run.elapsed < 3.5
    assert all(r.header("X-aws-ec2-metadata-token") is None for r in svc.requests[1:])


# --- gcp ------------------------------------------------------------------------------------------------------
# https://cloud.google.com/compute/docs/metadata/querying-metadata: GET
# http://metadata.google.internal/computeMetadata/v1/... (or http://169.254.169.254/computeMetadata/v1/...) with
# `Metadata-Flavor: Google`; without it the server answers 403; answers carry `Metadata-Flavor: Google`.
# instance/hostname, instance/attributes/ssh-keys and project/attributes/ssh-keys ("USER:KEY" lines,
# https://cloud.google.com/compute/docs/connect/add-ssh-keys), instance/attributes/block-project-ssh-keys,
# instance/attributes/user-data (a custom attribute).
def gcp_service(block_project: bool = False) -> FakeService:
    attrs = {
        "/computeMetadata/v1/instance/hostname": "vm-1.c.proj.internal",
        "/computeMetadata/v1/instance/attributes/ssh-keys": f"alice:{KEY}\n",
        "/computeMetadata/v1/project/attributes/ssh-keys": f"bob:{KEY2}\n",
        "/computeMetadata/v1/instance/attributes/user-data": json.dumps(TREE),
    }
    if block_project:
        attrs["/computeMetadata/v1/instance/attributes/block-project-ssh-keys"] = "TRUE"

    def answer(body: str) -> Answer:
        return lambda req: ok(body) if req.header("Metadata-Flavor") == "Google" else (403, b"")

    return FakeService(routes={k: answer(v) for k, v in attrs.items()}, extra_headers=[("Metadata-Flavor", "Google")])


def test_gcp_requests_and_files(env: Env) -> None:
    svc = env.serve("metadata.google.internal", gcp_service())
    run = env.run("gcp")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "GCP"
    assert svc.requests[0].path == "/computeMetadata/v1/instance/hostname"
    for r in svc.requests:
        assert r.method == "GET" and r.header("Metadata-Flavor") == "Google"
        assert r.header("Host") == "metadata.google.internal"
        assert r.header("X-Forwarded-For") is None
    assert run.read("ssh/authorized_keys") == f"{KEY}\n{KEY2}\n"
    assert json.loads(run.read("userdata")) == TREE
    assert_tree(run)


def test_gcp_instance_can_block_project_keys_and_the_address_is_the_fallback(env: Env) -> None:
    # metadata.google.internal refused: the documented address answers
    svc = env.serve("169.254.169.254", gcp_service(block_project=True))
    run = env.run("gcp")
    assert run.read("provider") == "GCP"
    assert all(r.header("Host") == "169.254.169.254" for r in svc.requests)
    assert "/computeMetadata/v1/project/attributes/ssh-keys" not in svc.paths()
    assert run.read("ssh/authorized_keys") == f"{KEY}\n"


# --- azure ----------------------------------------------------------------------------------------------------
# https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service: GET
# http://169.254.169.254/metadata/instance?api-version=2021-02-01 with `Metadata: true` (else 400), no
# X-Forwarded-For; compute.osProfile.computerName, compute.vmId, compute.publicKeys[].keyData; user data:
# GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text, base64.
AZURE_INSTANCE = {
    "compute": {
        "name": "vm-name",
        "osProfile": {"computerName": "azure-host", "adminUsername": "azureuser"},
        "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
        "vmSize": "Standard_B1s",
        "location": "westeurope",
        "zone": "1",
        "publicKeys": [{"keyData": KEY, "path": "/home/azureuser/.ssh/authorized_keys"}],
    },
    "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": "10.1.0.4", "publicIpAddress": ""}]}}]},
}


def test_azure_imds_requests_and_base64_user_data(env: Env) -> None:
    def answer(body: bytes) -> Answer:
        return lambda req: ok(body) if req.header("Metadata") == "true" else (400, b'{"error": "Bad request"}')

    svc = env.serve(
        "169.254.169.254",
        FakeService(
            routes={
                "/metadata/instance?api-version=2021-02-01": answer(json.dumps(AZURE_INSTANCE).encode()),
                "/metadata/instance/compute/userData?api-version=2021-01-01&format=text": answer(
                    base64.b64encode(json.dumps(TREE).encode())
                ),
            }
        ),
    )
    run = env.run("azure")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "Azure"
    for r in svc.requests:
        assert r.method == "GET" and r.header("Metadata") == "true" and r.header("X-Forwarded-For") is None
        assert r.header("Host") == "169.254.169.254"
    assert svc.requests[0].path == "/metadata/instance?api-version=2021-02-01"
    assert "/metadata/instance/compute/userData?api-version=2021-01-01&format=text" in svc.paths()
    assert run.read("instance_id") == "02aab8a4-74ef-476e-8182-f6d2ba4166a6"
    assert run.read("local_ipv4") == "10.1.0.4" and not (run.config / "public_ipv4").exists()
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert json.loads(run.read("userdata")) == TREE
    assert run.read("app/greeting") == "hello\n"
    assert run.hostnames == ["from-userdata"]


# --- openstack ------------------------------------------------------------------------------------------------
# https://docs.openstack.org/nova/latest/user/metadata.html: GET
# http://169.254.169.254/openstack/latest/meta_data.json (uuid, hostname, availability_zone, public_keys
# {name: key}) and /openstack/latest/user_data; the same files on a config drive labelled `config-2`.
OPENSTACK_META = {
    "uuid": "d8e02d56-2648-49a3-bf97-6be8f1204f38",
    "hostname": "os-host.novalocal",
    "name": "os-host",
    "availability_zone": "nova",
    "public_keys": {"mykey": KEY},
}


def test_openstack_metadata_service(env: Env) -> None:
    svc = env.serve(
        "169.254.169.254",
        FakeService(
            routes={
                "/openstack/latest/meta_data.json": ok(json.dumps(OPENSTACK_META)),
                "/openstack/latest/user_data": ok("plain user data\n"),
            }
        ),
    )
    run = env.run("openstack")
    assert run.read("provider") == "openstack"
    assert [(r.method, r.path) for r in svc.requests] == [
        ("GET", "/openstack/latest/meta_data.json"),
        ("GET", "/openstack/latest/meta_data.json"),
        ("GET", "/openstack/latest/user_data"),
    ]
    assert run.read("hostname") == "os-host.novalocal" and run.hostnames == ["os-host.novalocal"]
    assert run.read("instance_id") == OPENSTACK_META["uuid"] and run.read("availability_zone") == "nova"
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert run.read("userdata") == "plain user data\n"  # not JSON: kept as given, no tree


def test_openstack_config_drive(env: Env) -> None:
    env.labels = {"config-2": "/dev/vdb"}
    env.disk(
        "/dev/vdb",
        {
            "openstack/latest/meta_data.json": json.dumps(OPENSTACK_META),
            "openstack/latest/user_data": json.dumps(TREE),
        },
        fstype="vfat",
    )
    run = env.run("openstack")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "ConfigDrive /dev/vdb"
    mounts = (env.tmp / "stubs" / "mounts").read_text().splitlines()
    assert [m.split()[:6] for m in mounts] == [
        ["mount", "-t", "iso9660", "-o", "ro", "/dev/vdb"],
        ["mount", "-t", "vfat", "-o", "ro", "/dev/vdb"],
    ]
    assert run.read("instance_id") == OPENSTACK_META["uuid"]
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert_tree(run)


# --- hetzner --------------------------------------------------------------------------------------------------
# https://docs.hetzner.cloud/ "Server Metadata": http://169.254.169.254/hetzner/v1/metadata/{hostname,
# instance-id, public-ipv4, availability-zone, region, public-keys}, user data at /hetzner/v1/userdata.
def test_hetzner(env: Env) -> None:
    base = "/hetzner/v1/metadata"
    svc = env.serve(
        "169.254.169.254",
        FakeService(
            routes={
                f"{base}/hostname": ok("hz-1"),
                f"{base}/instance-id": ok("4711"),
                f"{base}/public-ipv4": ok("198.51.100.7"),
                f"{base}/public-keys": ok(json.dumps([KEY, KEY2])),
                "/hetzner/v1/userdata": ok(json.dumps(TREE)),
            }
        ),
    )
    run = env.run("hetzner")
    assert run.read("provider") == "Hetzner"
    assert svc.requests[0].path == f"{base}/hostname"
    assert all(r.method == "GET" and r.header("Host") == "169.254.169.254" for r in svc.requests)
    assert run.read("instance_id") == "4711" and run.read("public_ipv4") == "198.51.100.7"
    assert run.read("ssh/authorized_keys") == f"{KEY}\n{KEY2}\n"
    assert_tree(run)


# --- scaleway -------------------------------------------------------------------------------------------------
# https://www.scaleway.com/en/developers/api/instance/user-data: http://169.254.42.42/conf (KEY=VALUE lines);
# user data at /user_data/<key> (cloud-init) only for requests from a source port below 1024.
SCALEWAY_CONF = f"""COMMERCIAL_TYPE=DEV1-S
HOSTNAME=scw-host
ID=5d3c7a55-0000-4c3d-9f5a-3a5f1b6c1d2e
LOCATION_ZONE_ID=fr-par-1
PRIVATE_IP=10.2.0.3
PUBLIC_IP_ADDRESS=51.15.0.9
SSH_PUBLIC_KEYS=2
SSH_PUBLIC_KEYS_0_KEY='{KEY}'
SSH_PUBLIC_KEYS_1_KEY='{KEY2}'
"""


def test_scaleway_user_data_from_a_privileged_port(env: Env) -> None:
    if os.geteuid() != 0:
        pytest.skip("binding a source port below 1024 needs root")
    svc = env.serve(
        "169.254.42.42",
        FakeService(
            routes={
                "/conf": ok(SCALEWAY_CONF),
                "/user_data/cloud-init": lambda req: ok(json.dumps(TREE)) if req.client_port < 1024 else (403, b""),
            }
        ),
    )
    run = env.run("scaleway")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "Scaleway"
    assert all(r.header("Host") == "169.254.42.42" and r.method == "GET" for r in svc.requests)
    assert svc.get("/user_data/cloud-init").client_port < 1024
    assert run.read("instance_id") == "5d3c7a55-0000-4c3d-9f5a-3a5f1b6c1d2e"
    assert run.read("instance_location") == "fr-par-1"
    assert run.read("public_ip") == "51.15.0.9" and run.read("private_ip") == "10.2.0.3"
    assert run.read("ssh/authorized_keys") == f"{KEY}\n{KEY2}\n"
    assert_tree(run)


# --- vultr, digitalocean ---------------------------------------------------------------------------------------
# https://www.vultr.com/metadata/: http://169.254.169.254/v1/ (index), /v1/hostname, /v1/instanceid,
# /v1/public-keys, /v1/region/regioncode, /v1/interfaces/0/ipv4/address; user data at /latest/user-data
# (https://www.vultr.com/docs/manage-instance-user-data-with-the-vultr-metadata-api/).
VULTR = {
    "/v1/": "hostname\ninstanceid\npublic-keys\n",
    "/v1/hostname": "vultr-guest",
    "/v1/instanceid": "a747bfz6385e",
    "/v1/public-keys": KEY + "\n",
    "/v1/region/regioncode": "AMS",
    "/v1/interfaces/0/ipv4/address": "192.0.2.2",
    "/latest/user-data": json.dumps(TREE),
}
# https://docs.digitalocean.com/reference/api/metadata/: http://169.254.169.254/metadata/v1/ (index), .../hostname,
# id, region, public-keys, user-data, interfaces/public/0/ipv4/address.
DIGITALOCEAN = {
    "/metadata/v1/": "id\nhostname\nuser-data\npublic-keys\nregion\ninterfaces/\n",
    "/metadata/v1/hostname": "droplet-1",
    "/metadata/v1/id": "2756294",
    "/metadata/v1/region": "nyc3",
    "/metadata/v1/public-keys": KEY + "\n",
    "/metadata/v1/interfaces/public/0/ipv4/address": "192.0.2.9",
    "/metadata/v1/user-data": json.dumps(TREE),
}


def test_vultr(env: Env) -> None:
    svc = env.serve("169.254.169.254", FakeService(routes={k: ok(v) for k, v in VULTR.items()}))
    run = env.run("vultr")
    assert run.read("provider") == "Vultr"
    assert svc.requests[0].path == "/v1/"
    assert set(svc.paths()) >= set(VULTR)
    assert all(r.method == "GET" and r.header("Host") == "169.254.169.254" for r in svc.requests)
    assert run.read("instance_id") == "a747bfz6385e" and run.read("region_code") == "AMS"
    assert run.read("public_ipv4") == "192.0.2.2"
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert_tree(run)


def test_digitalocean(env: Env) -> None:
    svc = env.serve("169.254.169.254", FakeService(routes={k: ok(v) for k, v in DIGITALOCEAN.items()}))
    run = env.run("digitalocean")
    assert run.read("provider") == "DigitalOcean"
    assert svc.requests[0].path == "/metadata/v1/"
    assert set(svc.paths()) >= set(DIGITALOCEAN)
    assert all(r.method == "GET" and r.header("Host") == "169.254.169.254" for r in svc.requests)
    assert run.read("id") == "2756294" and run.read("region") == "nyc3" and run.read("public_ipv4") == "192.0.2.9"
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert_tree(run)


# --- equinixmetal, metaldata ----------------------------------------------------------------------------------
# https://deploy.equinix.com/developers/docs/metal/server-metadata/metadata: GET
# https://metadata.platformequinix.com/metadata (JSON: hostname, ssh_keys) and /userdata.
def test_equinixmetal_over_https(env: Env, tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("needs openssl to make the fake service's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=metadata.platformequinix.com",
         "-keyout", str(key), "-out", str(cert), "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    meta = {"id": "2885032e", "hostname": "metal-1", "ssh_keys": [KEY, KEY2], "network": {}}
    svc = env.serve(
        "equinix",
        FakeService(routes={"/metadata": ok(json.dumps(meta)), "/userdata": ok(json.dumps(TREE))}, tls=ctx),
    )
    env.equinix_url = f"https://127.0.0.1:{svc.port}"
    run = env.run("equinixmetal")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "EquinixMetal"
    assert [(r.method, r.path) for r in svc.requests] == [
        ("GET", "/metadata"),
        ("GET", "/metadata"),
        ("GET", "/userdata"),
    ]
    assert run.read("ssh/authorized_keys") == f"{KEY}\n{KEY2}\n"
    assert_tree(run)


def test_equinixmetal_ipxe_user_data_is_not_user_data(env: Env, tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x", "-keyout", str(key),
         "-out", str(cert), "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    svc = env.serve(
        "equinix",
        FakeService(
            routes={"/metadata": ok('{"hostname": "m"}'), "/userdata": ok("#!ipxe\nchain http://x\n")}, tls=ctx
        ),
    )
    env.equinix_url = f"https://127.0.0.1:{svc.port}"
    run = env.run("equinixmetal")
    assert run.read("provider") == "EquinixMetal"
    assert not (run.config / "userdata").exists()


def test_metaldata(env: Env) -> None:
    svc = env.serve(
        "metaldata",
        FakeService(
            routes={
                "/get/meta/hostname": ok("metal-box"),
                "/get/meta/authorized-keys": ok(KEY + "\n"),
                "/get/user": ok("hello"),
            }
        ),
    )
    run = env.run("metaldata")
    assert run.read("provider") == "metaldata"
    assert svc.requests[0].path == "/get/meta/hostname" and svc.requests[0].header("Host") == "metaldata"
    assert run.read("ssh/authorized_keys") == KEY + "\n" and run.read("userdata") == "hello"
    assert run.hostnames == ["metal-box"]


# --- vmware ---------------------------------------------------------------------------------------------------
# guestinfo keys guestinfo.metadata / .userdata / .vendordata and their `.encoding` (base64, gzip+base64), as
# upstream (and VMware's cloud-init datasource); read with `vmware-rpctool "info-get KEY"`.
def test_vmware_guestinfo_decoding(env: Env) -> None:
    env.fake_rpctool(
        {
            "guestinfo.metadata": base64.b64encode(b"local-hostname: vm\n").decode(),
            "guestinfo.metadata.encoding": "base64",
            "guestinfo.userdata": base64.b64encode(gzip.compress(json.dumps(TREE).encode())).decode(),
            "guestinfo.userdata.encoding": "gzip+base64",
        }
    )
    run = env.run("vmware")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "VMWARE"
    assert run.read("metadata") == "local-hostname: vm\n"
    assert not (run.config / "vendordata").exists()
    assert_tree(run)
    assert "info-get guestinfo.userdata" in (env.tmp / "stubs" / "rpc").read_text().splitlines()


def test_vmware_without_guestinfo_is_skipped(env: Env) -> None:
    env.fake_rpctool({"guestinfo.metadata": "---"})
    run = env.run("vmware")
    assert not (run.config / "provider").exists()
    assert "no metadata/userdata found" in run.proc.stdout


# --- cdrom ----------------------------------------------------------------------------------------------------
def test_cdrom_nocloud_label_first_then_sr_devices(env: Env) -> None:
    # cloud-init NoCloud: a vfat or iso9660 file system labelled cidata with user-data and meta-data
    env.labels = {"cidata": "/dev/vdc"}
    (env.tmp / "dev" / "sr0").write_text("")
    env.disk("/dev/vdc", {"user-data": json.dumps(TREE), "meta-data": "instance-id: x\n"}, fstype="vfat")
    env.disk(f"{env.tmp}/dev/sr0", {"config": "from sr0"})
    run = env.run("cdrom")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "CDROM /dev/vdc"
    assert (env.tmp / "stubs" / "mounts").read_text().splitlines()[1].startswith("mount -t vfat -o ro /dev/vdc ")
    assert run.read("metadata") == "instance-id: x\n"
    assert_tree(run)


def test_cdrom_falls_back_to_config_on_any_iso9660(env: Env) -> None:
    env.block("vda", iso9660=False)
    env.block("loop0", iso9660=True)  # loop and ram devices are not looked at
    env.disk("loop0", {"config": "loop"})
    vdb = env.block("vdb", iso9660=True)
    env.disk("vdb", {"config": "plain"})
    run = env.run("cdrom")
    assert run.read("provider") == f"CDROM {vdb}" and run.read("userdata") == "plain"
    assert [m.split()[5] for m in (env.tmp / "stubs" / "mounts").read_text().splitlines()] == [str(vdb)]


# --- order, defaults, timeouts --------------------------------------------------------------------------------
def test_network_providers_in_the_order_given(env: Env) -> None:
    env.serve("169.254.169.254", aws_service(token_required=False))
    env.serve("metadata.google.internal", gcp_service())
    assert env.run("gcp", "aws").read("provider") == "GCP"


def test_network_before_disks_before_files_whatever_the_order(env: Env, tmp_path: Path) -> None:
    env.serve("169.254.169.254", aws_service(token_required=False))
    f = tmp_path / "ud.json"
    f.write_text(json.dumps(TREE))
    env.labels = {"cidata": "/dev/vdb"}
    env.disk("/dev/vdb", {"config": "from cd"})
    assert env.run(f"file={f}", "cdrom", "aws").read("provider") == "AWS"
    env.stop()
    env.services.clear()
    run = env.run(f"file={f}", "cdrom", "aws")
    assert run.read("provider") == "CDROM /dev/vdb"
    env.labels = {}
    (run.config / "provider").unlink()
    run = env.run(f"file={f}", "cdrom", "aws")
    assert run.read("provider") == str(f)  # upstream names a file provider by its path
    assert run.read("app/greeting") == "hello\n"


def test_default_is_upstreams_list_in_its_order(env: Env) -> None:
    # both answer at 169.254.169.254: upstream's default list has vultr before digitalocean (and no azure)
    routes = {k: ok(v) for k, v in {**DIGITALOCEAN, **VULTR}.items()}
    routes["/metadata/instance?api-version=2021-02-01"] = ok(json.dumps(AZURE_INSTANCE))
    env.serve("169.254.169.254", FakeService(routes=routes))
    run = env.run()
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "Vultr"


def test_probes_run_at_once_and_time_out(env: Env) -> None:
    # aws (token PUT and hostname), hetzner and vultr never answer; digitalocean does. One after the other this
    # would take >= 4 timeouts; at once it is aws's two requests.
    svc = FakeService(routes={k: ok(v) for k, v in DIGITALOCEAN.items()})
    svc.hang = {"/latest/api/token", "/latest/meta-data/hostname", "/hetzner/v1/metadata/hostname", "/v1/"}
    env.serve("169.254.169.254", svc)
    run = env.run("aws", "hetzner", "vultr", "digitalocean")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.read("provider") == "DigitalOcean"
    assert 1.8 < run.elapsed < 3.5, run.elapsed


def test_nothing_found_is_not_an_error(env: Env) -> None:
    run = env.run("aws", "gcp", "cdrom")
    assert run.proc.returncode == 0
    assert "no metadata/userdata found" in run.proc.stdout
    assert not (run.config / "provider").exists()
    assert run.elapsed < 3


def test_unknown_provider_is_an_error(env: Env) -> None:
    run = env.run("aws", "nimbus")
    assert run.proc.returncode == 1
    assert "unrecognised metadata provider: nimbus" in run.proc.stderr


def test_status_other_than_200_is_no_answer(env: Env) -> None:
    env.serve("169.254.169.254", FakeService(routes={"/latest/meta-data/hostname": (500, b"oops")}))
    run = env.run("aws")
    assert not (run.config / "provider").exists()


# --- the JSON tree --------------------------------------------------------------------------------------------
def test_json_tree_rules(env: Env, tmp_path: Path) -> None:
    data = {
        "dir": {"perm": "0700", "entries": {"sub": {"entries": {"f": {"content": "x", "perm": "0640"}}}}},
        "both": {"content": "a", "entries": {}},
        "neither": {"perm": "0644"},
        "..": {"content": "escape"},
        "badperm": {"content": "p", "perm": "rw"},
        "ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": KEY + "\n"}}},
    }
    f = tmp_path / "ud"
    f.write_text(json.dumps(data))
    run = env.run(f"file={f}")
    assert run.mode("dir") == 0o700 and run.mode("dir/sub") == 0o755
    assert run.read("dir/sub/f") == "x" and run.mode("dir/sub/f") == 0o640
    for name in ("both", "neither", "badperm"):
        assert not (run.config / name).exists()
    assert not (run.config.parent / "escape").exists()
    assert run.read("ssh/authorized_keys") == KEY + "\n"
    assert "skipping invalid entry /both" in run.proc.stdout
    assert run.hostnames == []
