"""``run qemu --metadata``: the emulated metadata services over real sockets, one request a connection as
the guest's relay makes them. The expected paths, headers and refusals are the providers' documented ones
(each test names its source), not read back from our own tables."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pycdlib
import pytest

from linuxkit.errors import UserError
from linuxkit.metadata.iso import files_iso_bytes
from linuxkit.run import mdrelay
from linuxkit.run.metaservice import GUEST_IPV4, Instance, MetadataServer, iso_files

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcGr8l2kvTU2wVTQc7kYhtRl0ZgIDDgCMM6Ac9kz2yD me@host"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 other@host"
USERDATA = b'{"app": {"entries": {"greeting": {"content": "hello"}}}}'
INST = Instance("box1", "0123456789abcdef0123456789abcdef", USERDATA, (KEY, KEY2), "02:11:22:33:44:55")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("169.254.169.254", 80, timeout=10)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self._path)
        self.sock = sock


class Client:
    def __init__(self, server: MetadataServer) -> None:
        self.server = server

    def __call__(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        conn = UnixHTTPConnection(self.server.socket_path)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


Serve = Callable[..., Client]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    servers: list[MetadataServer] = []

    def start(provider: str, inst: Instance = INST) -> Client:
        server = MetadataServer(provider, inst, tmp_path / f"{provider}.log").start()
        servers.append(server)
        return Client(server)

    yield start
    for s in servers:
        s.stop()


# --- AWS: docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html --------------

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"


def test_aws_imdsv2_token_then_requests(serve: Serve) -> None:
    get = serve("aws")
    status, headers, token = get("/latest/api/token", {TTL: "21600"}, "PUT")
    assert status == 200 and headers[TTL.lower()] == "21600" and len(token) > 20
    status, _, body = get("/latest/meta-data/instance-id", {TOKEN: token.decode()})
    assert status == 200 and body.startswith(b"i-")
    # an unknown token is refused even when IMDSv1 is allowed
    assert get("/latest/meta-data/instance-id", {TOKEN: "AQAEAnot-a-token"})[0] == 401
    # IMDSv1 (no token) works when tokens are optional
    status, _, body = get("/latest/meta-data/hostname")
    assert (status, body) == (200, b"box1")


@pytest.mark.parametrize("ttl", [None, "0", "21601", "abc"])
def test_aws_token_request_needs_a_valid_ttl(serve: Serve, ttl: str | None) -> None:
    get = serve("aws")
    assert get("/latest/api/token", {TTL: ttl} if ttl else {}, "PUT")[0] == 400


def test_aws_token_refusals(serve: Serve) -> None:
    get = serve("aws")
    # a token request carrying X-Forwarded-For is refused; tokens are only handed out by PUT
    assert get("/latest/api/token", {TTL: "60", "X-Forwarded-For": "10.0.0.1"}, "PUT")[0] == 403
    assert get("/latest/api/token", {TTL: "60"})[0] == 405


def test_aws_v2_requires_tokens_and_v1_has_none(serve: Serve) -> None:
    v2 = serve("aws-v2")
    assert v2("/latest/meta-data/hostname")[0] == 401
    token = v2("/latest/api/token", {TTL: "60"}, "PUT")[2].decode()
    assert v2("/latest/meta-data/hostname", {TOKEN: token})[:3:2] == (200, b"box1")
    v1 = serve("aws-v1")
    assert v1("/latest/api/token", {TTL: "60"}, "PUT")[0] == 405
    assert v1("/latest/meta-data/hostname")[:3:2] == (200, b"box1")


def test_aws_meta_data_tree(serve: Serve) -> None:
    get = serve("aws")
    listing = get("/latest/meta-data/")[2].decode().splitlines()
    for entry in ("ami-id", "hostname", "instance-id", "instance-type", "local-ipv4", "placement/", "public-keys/"):
        assert entry in listing
    assert get("/latest/meta-data/local-ipv4")[2] == GUEST_IPV4.encode()
    assert get("/latest/meta-data/placement/availability-zone")[2] == b"us-east-1a"
    # public-keys/ lists "index=name"; the key is at public-keys/INDEX/openssh-key
    assert get("/latest/meta-data/public-keys/")[2].decode().splitlines() == ["0=linuxkit", "1=linuxkit-1"]
    assert get("/latest/meta-data/public-keys/0/")[2] == b"openssh-key"
    assert get("/latest/meta-data/public-keys/1/openssh-key")[2] == KEY2.encode()
    assert get("/latest/user-data")[:3:2] == (200, USERDATA)
    document = json.loads(get("/latest/dynamic/instance-identity/document")[2])
    assert document["instanceId"].startswith("i-") and document["privateIp"] == GUEST_IPV4
    assert get("/latest/meta-data/no-such-thing")[0] == 404


def test_aws_without_userdata_or_keys(serve: Serve) -> None:
    get = serve("aws", Instance("bare", "f" * 32))
    assert get("/latest/user-data")[0] == 404  # documented: 404 when the instance has no user data
    assert get("/latest/meta-data/public-keys/")[0] == 404


# --- GCP: cloud.google.com/compute/docs/metadata/querying-metadata --------------------------------------------


def test_gcp_requires_metadata_flavor(serve: Serve) -> None:
    get = serve("gcp")
    status, headers, body = get("/computeMetadata/v1/instance/hostname")
    assert status == 403 and b"Metadata-Flavor" in body
    assert (
        get("/computeMetadata/v1/instance/hostname", {"Metadata-Flavor": "Google", "X-Forwarded-For": "1.2.3.4"})[0]
        == 403
    )
    status, headers, body = get("/computeMetadata/v1/instance/hostname", {"Metadata-Flavor": "Google"})
    assert status == 200 and headers["metadata-flavor"] == "Google"
    assert body.decode().startswith("box1.") and body.decode().endswith(".internal")


def test_gcp_paths(serve: Serve) -> None:
    get = serve("gcp")
    g = {"Metadata-Flavor": "Google"}
    assert get("/computeMetadata/v1/instance/attributes/user-data", g)[2] == USERDATA
    assert get("/computeMetadata/v1/instance/name", g)[2] == b"box1"
    assert get("/computeMetadata/v1/instance/id", g)[2].isdigit()
    assert get("/computeMetadata/v1/instance/zone", g)[2].decode().startswith("projects/")
    # ssh-keys: "USERNAME:KEY" lines
    assert get("/computeMetadata/v1/project/attributes/ssh-keys", g)[2].decode() == f"root:{KEY}\nroot:{KEY2}\n"
    assert "user-data" in get("/computeMetadata/v1/instance/attributes/", g)[2].decode().split()
    status, headers, _ = get("/computeMetadata/v1/instance", g)
    assert status == 301 and headers["location"] == "/computeMetadata/v1/instance/"
    tree = json.loads(get("/computeMetadata/v1/instance/?recursive=true", g)[2])
    assert tree["name"] == "box1" and tree["attributes"]["user-data"] == USERDATA.decode()
    assert json.loads(get("/computeMetadata/v1/instance/name?alt=json", g)[2]) == "box1"
    # the legacy header is still accepted on v1
    assert get("/computeMetadata/v1/instance/name", {"X-Google-Metadata-Request": "True"})[0] == 200
    assert get("/computeMetadata/v1/instance/nothing", g)[0] == 404


# --- Azure: learn.microsoft.com/azure/virtual-machines/instance-metadata-service ------------------------------


def test_azure_requires_metadata_header_and_api_version(serve: Serve) -> None:
    get = serve("azure")
    status, _, body = get("/metadata/instance?api-version=2021-02-01")
    assert status == 400 and "Required metadata header not specified" in json.loads(body)["error"]
    status, _, body = get("/metadata/instance", {"Metadata": "true"})
    assert status == 400 and "api-version" in json.loads(body)["error"] and json.loads(body)["newest-versions"]
    assert get("/metadata/instance?api-version=2021-02-01", {"Metadata": "true", "X-Forwarded-For": "a"})[0] == 400
    assert get("/metadata/instance?api-version=2021-02-01", {"Metadata": "true"}, "POST")[0] == 405
    assert get("/metadata/instance?api-version=1999-01-01", {"Metadata": "true"})[0] == 400


def test_azure_paths(serve: Serve) -> None:
    get = serve("azure")
    m = {"Metadata": "true"}
    doc = json.loads(get("/metadata/instance?api-version=2021-02-01", m)[2])
    assert doc["compute"]["name"] == "box1" and doc["compute"]["osProfile"]["computerName"] == "box1"
    ip = doc["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"]
    assert ip == GUEST_IPV4
    # userData is base64; format=text gives a leaf as plain text
    body = get("/metadata/instance/compute/userData?api-version=2021-01-01&format=text", m)[2]
    assert base64.b64decode(body) == USERDATA
    assert get("/metadata/instance/compute/name?api-version=2021-02-01&format=text", m)[2] == b"box1"
    key = get("/metadata/instance/compute/publicKeys/0/keyData?api-version=2021-02-01&format=text", m)[2]
    assert key == KEY.encode()
    assert get("/metadata/instance/compute?api-version=2021-02-01&format=text", m)[0] == 400
    assert "apiVersions" in json.loads(get("/metadata/versions", m)[2])


# --- OpenStack: docs.openstack.org/nova/latest/user/metadata.html ---------------------------------------------


def test_openstack_paths(serve: Serve) -> None:
    get = serve("openstack")
    assert "latest" in get("/openstack")[2].decode().split()
    assert {"meta_data.json", "user_data", "network_data.json"} <= set(get("/openstack/latest/")[2].decode().split())
    meta = json.loads(get("/openstack/latest/meta_data.json")[2])
    assert meta["hostname"] == "box1" and meta["uuid"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert meta["public_keys"]["linuxkit"] == KEY and meta["keys"][1]["data"] == KEY2
    assert get("/openstack/2012-08-10/user_data")[2] == USERDATA
    # the EC2-compatible paths upstream's provider reads, without IMDSv2
    assert get("/latest/meta-data/hostname")[2] == b"box1"
    assert get("/latest/meta-data/public-keys/0/openssh-key")[2] == KEY.encode()
    assert get("/latest/user-data")[2] == USERDATA
    assert get("/latest/api/token", {TTL: "60"}, "PUT")[0] == 405


# --- Hetzner: docs.hetzner.cloud "Server Metadata"; cloud-init's DataSourceHetzner ---------------------------


def test_hetzner_paths(serve: Serve) -> None:
    get = serve("hetzner")
    yaml_doc = get("/hetzner/v1/metadata")[2].decode()
    assert 'hostname: "box1"' in yaml_doc and "public-keys:\n- " in yaml_doc
    assert get("/hetzner/v1/metadata/hostname")[2] == b"box1"
    assert get("/hetzner/v1/metadata/instance-id")[2].isdigit()
    assert json.loads(get("/hetzner/v1/metadata/public-keys")[2]) == [KEY, KEY2]
    assert get("/hetzner/v1/userdata")[2] == USERDATA
    # upstream's provider: /latest/meta-data/KEY, public-keys as a JSON array
    assert get("/latest/meta-data/hostname")[2] == b"box1"
    assert json.loads(get("/latest/meta-data/public-keys")[2]) == [KEY, KEY2]
    assert get("/latest/user-data")[2] == USERDATA


# --- DigitalOcean: docs.digitalocean.com/reference/api/metadata-api/ -------------------------------------------


def test_digitalocean_paths(serve: Serve) -> None:
    get = serve("digitalocean")
    doc = json.loads(get("/metadata/v1.json")[2])
    assert doc["hostname"] == "box1" and doc["user_data"] == USERDATA.decode() and doc["public_keys"] == [KEY, KEY2]
    assert isinstance(doc["droplet_id"], int)
    assert get("/metadata/v1/hostname")[2] == b"box1"
    assert get("/metadata/v1/user-data")[2] == USERDATA
    assert get("/metadata/v1/public-keys")[2].decode().splitlines() == [KEY, KEY2]
    assert get("/metadata/v1/interfaces/public/0/ipv4/address")[2] == GUEST_IPV4.encode()
    assert "hostname" in get("/metadata/v1/")[2].decode().split()


# --- Vultr: vultr.com/metadata; cloud-init's Vultr helper -------------------------------------------------------


def test_vultr_paths(serve: Serve) -> None:
    get = serve("vultr")
    doc = json.loads(get("/v1.json")[2])
    assert doc["hostname"] == "box1" and doc["public-keys"] == [KEY, KEY2] and doc["interfaces"][0]["mac"]
    assert get("/v1/hostname")[2] == b"box1"
    assert get("/v1/instanceid")[2] == b"01234567"
    assert get("/v1/region/regioncode")[2] == b"AMS"
    assert get("/v1/public-keys")[2].decode().splitlines() == [KEY, KEY2]
    assert get("/latest/user-data")[2] == USERDATA


# --- Scaleway: scaleway.com/en/docs/compute/instances (metadata); upstream's provider ------------------------------


def test_scaleway_paths(serve: Serve) -> None:
    get = serve("scaleway")
    conf = get("/conf")[2].decode().splitlines()
    assert "HOSTNAME=box1" in conf and "SSH_PUBLIC_KEYS=2" in conf
    assert f"SSH_PUBLIC_KEYS_0_KEY='{KEY}'" in conf  # values with spaces are shell-quoted
    doc = json.loads(get("/conf?format=json")[2])
    assert doc["hostname"] == "box1" and doc["ssh_public_keys"][1]["key"] == KEY2
    assert get("/user_data/cloud-init")[2] == USERDATA


# --- the server, the relay, the log ---------------------------------------------------------------------------------


def test_access_log_and_unknown_paths(serve: Serve, tmp_path: Path) -> None:
    get = serve("aws")
    token = get("/latest/api/token", {TTL: "60"}, "PUT")[2].decode()
    get("/latest/meta-data/hostname", {TOKEN: token})
    assert get("/nothing")[0] == 404
    lines = (tmp_path / "aws.log").read_text().splitlines()
    assert lines == [
        f"PUT /latest/api/token 200 [{TTL}]",
        f"GET /latest/meta-data/hostname 200 [{TOKEN}]",
        "GET /nothing 404",
    ]
    assert token not in (tmp_path / "aws.log").read_text()


def test_head_has_no_body(serve: Serve) -> None:
    get = serve("digitalocean")
    status, headers, body = get("/metadata/v1/hostname", method="HEAD")
    assert status == 200 and headers["content-length"] == "4" and body == b""


def test_relay_carries_a_connection(tmp_path: Path) -> None:
    """What qemu runs for each guest connection: the request on stdin, the answer on stdout."""
    with MetadataServer("gcp", INST) as server:
        request = b"GET /computeMetadata/v1/instance/name HTTP/1.1\r\nHost: metadata\r\nMetadata-Flavor: Google\r\n\r\n"
        proc = subprocess.run(
            [sys.executable, "-I", "-S", mdrelay.__file__, server.socket_path],
            input=request,
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"HTTP/1.0 200") and proc.stdout.endswith(b"\r\n\r\nbox1")
    assert b"Metadata-Flavor: Google" in proc.stdout


def test_relay_carries_a_bare_http10_put(tmp_path: Path) -> None:
    """The least a guest may send (e.g. ``printf ... | nc``): HTTP/1.0, no Host, a body, then EOF."""
    with MetadataServer("aws-v2", INST) as server:
        request = f"PUT /latest/api/token HTTP/1.0\r\n{TTL}: 60\r\nContent-Length: 3\r\n\r\nabc".encode()
        relay = [sys.executable, "-I", "-S", mdrelay.__file__, server.socket_path]
        proc = subprocess.run(relay, input=request, capture_output=True, timeout=30, check=False)
        token = proc.stdout.split(b"\r\n\r\n", 1)[1].decode()
        got = Client(server)("/latest/meta-data/instance-id", {TOKEN: token})
    assert proc.stdout.startswith(b"HTTP/1.0 200") and token.startswith("AQAEA")
    assert got[0] == 200


def test_relay_without_a_server_fails(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", mdrelay.__file__, str(tmp_path / "none.sock")], input=b"", timeout=30, check=False
    )
    assert proc.returncode == 1


def test_server_stops_and_removes_its_socket() -> None:
    server = MetadataServer("aws", INST).start()
    path = Path(server.socket_path)
    assert path.exists()
    server.stop()
    assert not path.parent.exists()
    with pytest.raises(UserError):
        MetadataServer("cdrom", INST)


# --- the CD providers ------------------------------------------------------------------------------------------


def _iso_tree(image: bytes) -> tuple[str, dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    label = iso.pvd.volume_identifier.decode().strip()
    files: dict[str, bytes] = {}
    for root, _, names in iso.walk(rr_path="/"):
        for name in names:
            out = io.BytesIO()
            path = f"{root.rstrip('/')}/{name}"
            iso.get_file_from_iso_fp(out, rr_path=path)
            files[path.lstrip("/")] = out.getvalue()
    iso.close()
    return label, files


def test_openstack_config_drive_iso() -> None:
    """docs.openstack.org/nova/latest/user/config-drive.html: label config-2, openstack/VERSION/*.json."""
    label, files = iso_files("openstack-configdrive", INST)
    got_label, got = _iso_tree(files_iso_bytes(files, label, epoch=0))
    assert got_label == "config-2"
    meta = json.loads(got["openstack/latest/meta_data.json"])
    assert meta["hostname"] == "box1" and meta["public_keys"]["linuxkit"] == KEY
    assert got["openstack/latest/user_data"] == USERDATA
    assert "openstack/2012-08-10/meta_data.json" in got and "ec2/latest/meta-data.json" in got


def test_nocloud_iso_is_deterministic() -> None:
    """cloudinit.readthedocs.io NoCloud: label cidata, meta-data (instance-id, local-hostname), user-data."""
    label, files = iso_files("cdrom", INST)
    image = files_iso_bytes(files, label, epoch=0)
    assert image == files_iso_bytes(files, label, epoch=0)
    got_label, got = _iso_tree(image)
    assert got_label == "cidata" and set(got) == {"meta-data", "user-data"}
    meta = got["meta-data"].decode()
    assert 'local-hostname: "box1"' in meta and "instance-id: " in meta and KEY in meta
    assert got["user-data"] == USERDATA


def test_gcp_headers_do_not_leak_into_other_providers_answers() -> None:
    from linuxkit.run.metaservice import Request, make_answerer

    gcp, aws = make_answerer("gcp", INST), make_answerer("aws", INST)
    missing = Request("GET", "/computeMetadata/v1/no/such/key", {"metadata-flavor": "Google"})
    assert gcp(missing).status == 404 and gcp(missing).headers["Metadata-Flavor"] == "Google"
    other = aws(Request("GET", "/latest/meta-data/no-such-key", {}))
    assert other.status == 404 and "Metadata-Flavor" not in other.headers
