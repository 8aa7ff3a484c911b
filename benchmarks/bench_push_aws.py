"""``linuxkit push aws`` (EBS direct APIs, zero blocks skipped) against a boto3 S3 upload of the same file
(``upload_file``: multipart and parallel, what ``aws s3 cp`` does) to the same moto server on loopback.

The image is a sparse raw disk of ``--size`` GiB with an MBR and ``--data`` MiB of random data in a few runs
(a built ``aws`` image of examples/minimal.yml is 1 GiB with ~20 MiB of data). Each side runs as a fresh
process; the wall time and the process's peak RSS (``wait4``) are reported, medians of ``--repeat`` runs.
Goals (issue 14): ≥ 1.5× faster than the S3 upload for a 1 GiB mostly-empty image; peak memory ≤ 150 MB for a
4 GiB image (``--memory-size``, pushed only: an S3 copy of 4 GiB into moto's memory proves nothing).

moto's server runs in its own process (its costs are the same for both sides); against AWS the S3 side would
also pay ImportSnapshot's minutes, which this does not count.

Run: ``.venv/bin/python benchmarks/bench_push_aws.py [--size 1] [--data 32] [--memory-size 4] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB
ROOT = Path(__file__).resolve().parent.parent


def make_image(path: Path, size: int, data_mib: int) -> None:
    """A sparse disk: MBR with boot code and an active partition, ``data_mib`` MiB of random data in runs."""
    sys.path.insert(0, str(ROOT / "src"))
    from linuxkit.formats.partition import Partition, write_mbr

    with open(path, "wb") as fh:
        fh.truncate(size)
    with open(path, "r+b") as fh:
        write_mbr(fh, [Partition(2048, size // 512 - 4096, bootable=True)], seed="b", boot_code=b"\xeb" * 440)
        runs = 4
        for i in range(runs):
            fh.seek(MIB + i * (size // runs))
            for _ in range(data_mib // runs):
                fh.write(os.urandom(MIB))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(host: str, port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"moto_server did not listen on {host}:{port}")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:5]} failed: {err.decode(errors='replace')[-2000:]}")
    return took, usage.ru_maxrss / 1024


S3_UPLOAD = """
import sys, boto3
s3 = boto3.session.Session().client("s3")
s3.upload_file(sys.argv[1], sys.argv[2], sys.argv[3], ExtraArgs={"ContentType": "application/octet-stream"})
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="image size in GiB (default 1)")
    parser.add_argument("--data", type=int, default=32, help="MiB of non-zero data in it (default 32)")
    parser.add_argument("--memory-size", type=float, default=4.0, help="GiB of the memory check image (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    host, port = "127.0.0.1", free_port()
    # its own process: the peak RSS wait4 reports for a child includes what it inherited at fork
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(host, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    import boto3

    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    boto3.session.Session(region_name="us-east-1").client("s3").create_bucket(Bucket="bench")
    linuxkit = [sys.executable, "-m", "linuxkit.cli.main", "push", "aws"]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-push-aws-") as tmp:
            image = Path(tmp) / "bench.raw"
            make_image(image, int(args.size * GIB), args.data)
            ours, theirs = [], []
            for i in range(args.repeat):
                ours.append(timed([*linuxkit, str(image), "--img-name", f"bench-{i}", "-q"], env))
                theirs.append(timed([sys.executable, "-c", S3_UPLOAD, str(image), "bench", f"bench-{i}.raw"], env))
            ours_s = statistics.median(t for t, _ in ours)
            theirs_s = statistics.median(t for t, _ in theirs)
            print(f"image: {args.size:g} GiB, {args.data} MiB of data, {args.repeat} runs (medians)")
            print(f"  push aws (EBS direct)  {ours_s:7.2f} s  peak RSS {max(r for _, r in ours):6.1f} MB")
            print(f"  boto3 S3 upload_file   {theirs_s:7.2f} s  peak RSS {max(r for _, r in theirs):6.1f} MB")
            print(f"  speed-up: {theirs_s / ours_s:.1f}x (goal >= 1.5x)")
            image.unlink()
            if args.memory_size > 0:
                big = Path(tmp) / "big.raw"
                make_image(big, int(args.memory_size * GIB), max(args.data, 256))
                took, rss = timed([*linuxkit, str(big), "--img-name", "bench-big", "-q"], env)
                print(
                    f"memory: {args.memory_size:g} GiB image with {max(args.data, 256)} MiB of data pushed in "
                    f"{took:.2f} s, peak RSS {rss:.1f} MB (goal <= 150 MB)"
                )
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
