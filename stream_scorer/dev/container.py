"""The project's container image, built and run with Debian's podman, for its tests.

No Docker engine and no image registry are needed: podman runs containers
with ``runc`` and no default ulimits (a ``containers.conf`` of our own,
passed as ``CONTAINERS_CONF``), and the base image is a minimal Debian made
with ``debootstrap`` from Debian's packages (Python 3.11 and its venv
module), imported once and kept as a tarball in the dev cache. The image is
then the project's own ``Dockerfile``, built with ``BASE`` pointing at it;
pip reaches PyPI from inside the build through the machine's CA bundle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stream_scorer.dev.services import DevServiceError, cache_dir

#: The local base image: Debian bookworm (Python 3.11) with python3-venv.
BASE_IMAGE = "localhost/stream-scorer-base:bookworm"
#: What the tests build the project's Dockerfile as.
IMAGE = "localhost/stream-scorer:test"
_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``podman`` with runc and no default ulimits; raises DevServiceError on failure."""
    exe, runc = shutil.which("podman"), shutil.which("runc") or "/usr/sbin/runc"
    if exe is None or not Path(runc).exists():
        raise DevServiceError("podman or runc not found: run scripts/setup (Debian's packages)")
    conf = cache_dir() / "containers.conf"
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("[containers]\ndefault_ulimits = []\n")
    done = subprocess.run(
        [exe, "--runtime", runc, *args],
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise DevServiceError(
            f"podman {' '.join(args[:2])} failed ({done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )
    return done


def local_base() -> str:
    """The base image, made with debootstrap on first use (about two minutes, 275 MB)."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    tarball = cache_dir() / "base-bookworm.tar"
    if not tarball.exists():
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not Path(debootstrap).exists():
            raise DevServiceError("debootstrap not found: run scripts/setup")
        with tempfile.TemporaryDirectory(prefix="stream-scorer-rootfs-") as root:
            made = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=python3,python3-venv",
                    "bookworm",
                    root,
                ],
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if made.returncode != 0:
                raise DevServiceError(f"debootstrap failed:\n{made.stdout[-3000:]}{made.stderr}")
            partial = tarball.with_suffix(".part")
            subprocess.run(["tar", "-C", root, "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    podman("import", str(tarball), BASE_IMAGE, timeout=600)
    return BASE_IMAGE


def build_image(project: Path, tag: str = IMAGE, extra: Sequence[str] = ()) -> str:
    """Build ``project``'s Dockerfile on :func:`local_base` (as docker-format, which keeps
    ``HEALTHCHECK``); returns the tag."""
    mount = [f"-v={_CA_BUNDLE}:{_CA_BUNDLE}:ro"] if _CA_BUNDLE.exists() else []
    podman(
        "build",
        "--format=docker",
        "--network=host",
        *mount,
        f"--build-arg=BASE={local_base()}",
        f"--tag={tag}",
        *extra,
        str(project),
        timeout=1800,
    )
    return tag
