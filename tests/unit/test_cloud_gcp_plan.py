"""``push gcp``/``run gcp``: request bodies checked against the Compute Engine v1 REST reference
(cloud.google.com/compute/docs/reference/rest/v1: the Image, Disk and Instance resources, Operation), flag and
environment handling as upstream's ``push_gcp.go``/``run_gcp.go``, input checks made before any network call, and
the CLI's start (no Google SDK imported until the verb runs)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from linuxkit.cli import cloud_gcp_cmd as cmd
from linuxkit.cloud import gcp
from linuxkit.cloud.gcp_compute import (
    Compute,
    ComputeError,
    disk_body,
    image_body,
    image_features,
    instance_body,
    size_gb,
)
from linuxkit.errors import UserError


def test_image_body_is_an_image_resource_from_a_raw_disk_in_storage() -> None:
    assert image_body("lk", "https://storage.googleapis.com/b/lk.img.tar.gz") == {
        "name": "lk",
        "rawDisk": {"source": "https://storage.googleapis.com/b/lk.img.tar.gz"},
    }
    full = image_body("lk", "S", family="fam", nested_virt=True, uefi=True)
    assert full["family"] == "fam"
    assert full["licenses"] == ["projects/vm-options/global/licenses/enable-vmx"]
    assert full["guestOsFeatures"] == [{"type": "UEFI_COMPATIBLE"}]


def test_instance_body_without_user_data_nor_options() -> None:
    body = instance_body("vm", "img", "europe-west1-d", "g1-small")
    assert body["metadata"] == {"items": [{"key": "serial-port-enable", "value": "1"}]}
    assert body["machineType"] == "zones/europe-west1-d/machineTypes/g1-small"
    assert body["disks"] == [
        {"autoDelete": True, "boot": True, "initializeParams": {"sourceImage": "global/images/img"}}
    ]
    assert "minCpuPlatform" not in body and "shieldedInstanceConfig" not in body
    nested = instance_body("vm", "img", "z", "m", nested_virt=True, user_data="")
    assert nested["minCpuPlatform"] == "Intel Haswell"
    assert {"key": "user-data", "value": ""} in nested["metadata"]["items"]


def test_disk_sizes_round_up_to_whole_gigabytes_as_upstream() -> None:
    assert [size_gb(mb) for mb in (0, 1, 1024, 1025, 2048, 5000)] == [1, 1, 1, 2, 2, 5]
    # int64 fields are JSON strings in Google's APIs
    assert disk_body("d", 3) == {"name": "d", "sizeGb": "3"}


def test_image_features_read_full_licence_urls() -> None:
    image = {
        "guestOsFeatures": [{"type": "VIRTIO_SCSI_MULTIQUEUE"}, {"type": "UEFI_COMPATIBLE"}],
        "licenses": ["https://www.googleapis.com/compute/v1/projects/vm-options/global/licenses/enable-vmx"],
    }
    assert image_features(image) == (True, True)
    assert image_features({}) == (False, False)


def test_flags_win_over_environment_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSDK_COMPUTE_ZONE", "us-east1-b")
    assert cmd.value(None, "CLOUDSDK_COMPUTE_ZONE", cmd.DEFAULT_ZONE) == "us-east1-b"
    assert cmd.value("asia-east1-a", "CLOUDSDK_COMPUTE_ZONE", cmd.DEFAULT_ZONE) == "asia-east1-a"
    monkeypatch.setenv("CLOUDSDK_COMPUTE_ZONE", "")
    assert cmd.value(None, "CLOUDSDK_COMPUTE_ZONE", cmd.DEFAULT_ZONE) == "europe-west1-d"
    for text, on in (("", False), ("0", False), ("false", False), ("FALSE", False), ("1", True), ("yes", True)):
        monkeypatch.setenv("CLOUDSDK_IMAGE_PUBLIC", text)
        assert cmd.flag_on(False, "CLOUDSDK_IMAGE_PUBLIC") is on
    assert cmd.flag_on(True, "CLOUDSDK_IMAGE_PUBLIC")


def test_user_data_from_one_of_data_or_file(tmp_path: Path) -> None:
    (tmp_path / "ud").write_text("from file")
    assert cmd.user_data("inline", None) == "inline"
    assert cmd.user_data(None, str(tmp_path / "ud")) == "from file"
    assert cmd.user_data(None, None) is None
    with pytest.raises(UserError, match="both"):
        cmd.user_data("a", str(tmp_path / "ud"))
    with pytest.raises(UserError, match="unable to read"):
        cmd.user_data(None, str(tmp_path / "missing"))


def _archive(path: Path, member: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\0\0\0\0"))
    return path


def test_push_checks_its_input_before_any_network_call(tmp_path: Path) -> None:
    good = _archive(tmp_path / "good.img.tar.gz", "disk.raw")
    opts = gcp.PushOptions(path=good, project="p", bucket="b")
    assert gcp.image_name(good, "") == "good"
    assert gcp.image_name(good, "other") == "other"
    gcp.check_archive(good)
    with pytest.raises(UserError, match=r"disk\.raw"):
        gcp.check_archive(_archive(tmp_path / "x.img.tar.gz", "root.img"))
    with pytest.raises(UserError, match="no such file"):
        gcp.check_archive(tmp_path / "none.img.tar.gz")
    with pytest.raises(UserError, match="project"):
        gcp.push(gcp.PushOptions(path=good, project="", bucket="b"))
    with pytest.raises(UserError, match="bucket"):
        gcp.push(gcp.PushOptions(path=good, project="p", bucket=""))
    bad_name = _archive(tmp_path / "My_Image.img.tar.gz", "disk.raw")
    with pytest.raises(UserError, match="not a valid Compute Engine name") as err:
        gcp.push(gcp.PushOptions(path=bad_name, project="p", bucket="b"))
    assert err.value.hint is not None and "--img-name" in err.value.hint
    with pytest.raises(UserError, match="family"):
        gcp.push(gcp.PushOptions(path=good, project="p", bucket="b", family="Bad Family"))
    assert opts.name == ""


class Scripted:
    """A requests-like session answering from a script of (status, json) and recording the calls."""

    def __init__(self, answers: list[tuple[int, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls.append((method, url, kwargs.get("json")))
        status, payload = self.answers.pop(0)
        return _Response(status, payload)


class _Response:
    def __init__(self, status: int, payload: Any) -> None:
        import json

        self.status_code = status
        self.content = json.dumps(payload).encode() if payload is not None else b""
        self.text = self.content.decode()
        self._payload = payload

    def json(self) -> Any:
        return self._payload


def test_operations_are_polled_until_done_and_their_errors_raised() -> None:
    http = Scripted([(200, {"name": "op-1", "status": "RUNNING"}), (200, {"name": "op-1", "status": "DONE"})])
    compute = Compute(http=http, project="p", base="http://x/compute/v1/", sleep=lambda s: None)
    compute.insert_image({"name": "i"})
    assert [(m, u) for m, u, _ in http.calls] == [
        ("POST", "http://x/compute/v1/projects/p/global/images"),
        ("GET", "http://x/compute/v1/projects/p/global/operations/op-1"),
    ]
    failed = {"name": "op-2", "status": "DONE", "error": {"errors": [{"code": "QUOTA", "message": "no quota"}]}}
    compute.http = Scripted([(200, {"name": "op-2", "status": "PENDING"}), (200, failed)])
    with pytest.raises(ComputeError, match="QUOTA: no quota"):
        compute.insert_instance("z", {"name": "vm"})
    compute.http = Scripted([(403, {"error": {"code": 403, "message": "Required 'compute.images.create'"}})])
    with pytest.raises(ComputeError, match=r"HTTP 403: Required 'compute\.images\.create'") as err:
        compute.insert_image({"name": "i"})
    assert err.value.status == 403
    compute.http = Scripted([(404, {"error": {"code": 404, "message": "not found"}})])
    assert compute.delete_image("gone") is False


def test_cli_module_imports_no_google_sdk_and_help_works() -> None:
    code = (
        "import sys\n"
        "from linuxkit.cli.main import build_parser\n"
        "import linuxkit.cli.cloud_gcp_cmd\n"
        "args = build_parser().parse_args(['push', 'gcp', '--bucket', 'b', 'x.img.tar.gz'])\n"
        "assert args.run == 'cloud_gcp_cmd:push', args.run\n"
        "args = build_parser().parse_args(['run', 'gcp', '--zone', 'z', 'img'])\n"
        "assert args.run == 'cloud_gcp_cmd:run', args.run\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'linuxkit.cloud.gcp', 'requests'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    for verb in ("push", "run"):
        out = subprocess.run(
            [sys.executable, "-m", "linuxkit.cli.main", verb, "gcp", "--help"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "--project" in out.stdout and "--keys" in out.stdout


def test_a_missing_sdk_names_the_extra(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "m.img.tar.gz", "disk.raw")
    code = (
        "import sys\n"
        "sys.modules['google.auth'] = None\n"
        "from linuxkit.cli.main import main\n"
        f"sys.exit(main(['push', 'gcp', '--project', 'p', '--bucket', 'b', {str(archive)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'linuxkit[gcp]'" in proc.stderr


def test_serial_output_is_followed_until_the_instance_stops() -> None:
    """instances.getSerialPortOutput answers 400 until the instance is up; ``next`` is where to read from next;
    an empty answer makes the client look at the instance's status (TERMINATED: read once more, stop)."""
    err = {"error": {"code": 400, "message": "The resource is not ready"}}
    http = Scripted(
        [
            (400, err),
            (200, {"contents": "boot\n", "start": "0", "next": "5"}),
            (200, {"contents": "", "start": "5", "next": "5"}),
            (200, {"status": "RUNNING"}),
            (200, {"contents": "bye\n", "start": "5", "next": "9"}),
            (200, {"contents": "", "start": "9", "next": "9"}),
            (200, {"status": "TERMINATED"}),
            (200, {"contents": "", "start": "9", "next": "9"}),
        ]
    )
    compute = Compute(http=http, project="p", base="http://x/", sleep=lambda s: None)
    shown: list[str] = []
    gcp.stream_serial(compute, "z", "vm", shown.append, 0)
    assert "".join(shown) == "boot\nbye\n"
    assert http.answers == []
    compute.http = Scripted([(503, {"error": {"code": 503, "message": "gone"}})])
    gcp.stream_serial(compute, "z", "vm", shown.append, 0)
    compute.http = Scripted([(400, err)] * (gcp.NOT_READY_POLLS + 1))
    with pytest.raises(ComputeError, match="not ready"):
        gcp.stream_serial(compute, "z", "vm", shown.append, 0)
