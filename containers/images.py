"""The images, built without a registry: a Debian base, a wheelhouse, and the project's image.

- The base: ``mmdebstrap --variant=minbase bookworm`` from the Debian mirror apt is configured
  with, with Python 3.11 (bookworm's python3), venv, and redis-server (the offline stand-in for
  the official Redis image), then ``docker import``. Cached in ``.cache/base/<key>.tar``.
- The wheelhouse: ``pip wheel`` of the project's dependencies on this host (Python 3.11, like the
  image), in ``.cache/wheelhouse/<key>/``, keyed by ``pyproject.toml``.
- The image: the top-level ``Dockerfile`` with ``BASE`` and ``WHEELS`` pointing at those two.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .daemon import REPO, Daemon, DockerError

CACHE = REPO / ".cache"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "redis-server")
# /data belongs to redis, as in the official image, so a volume there is Redis's to write.
BASE_HOOKS = ('mkdir -p "$1/data" && chroot "$1" chown redis:redis /data',)
# Bookworm's python3 is 3.11.2, and this host's Python may be a later 3.11: requirements that
# only apply before 3.11.3 are added by hand (redis needs async-timeout there).
IMAGE_PYTHON_EXTRAS = ("async-timeout>=4.0.3",)
APP_IMAGE = "mesh-boutique:latest"  # docker-compose.yml names this image
BASE_IMAGE = "boutique-base:offline"  # containers/offline.yml names this one


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def base_key() -> str:
    return _key(SUITE.encode(), *(p.encode() for p in BASE_PACKAGES + BASE_HOOKS))


def base_tar(cache: Path = CACHE, log: Path | None = None) -> Path:
    """The base root file system as a tarball, built by mmdebstrap when not cached."""
    tar = cache / "base" / f"{base_key()}.tar"
    if tar.exists():
        return tar
    if not shutil.which("mmdebstrap"):
        raise DockerError("mmdebstrap is not installed; `make setup` installs it")
    tar.parent.mkdir(parents=True, exist_ok=True)
    partial = tar.with_suffix(".partial.tar")
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        '--aptopt=Acquire::Languages "none"',
        *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")),
        *(f"--customize-hook={hook}" for hook in BASE_HOOKS),
        SUITE,
        str(partial),
    ]
    _run(argv, log, "mmdebstrap")
    partial.rename(tar)
    for old in tar.parent.glob("*.tar"):
        if old != tar:
            old.unlink()
    return tar


def base_image(daemon: Daemon, cache: Path = CACHE, log: Path | None = None) -> str:
    """The base image's tag on ``daemon``, imported from the tarball when missing."""
    tag = f"boutique-base:{base_key()}"
    try:
        daemon.docker("image", "inspect", tag)
    except DockerError:
        tar = base_tar(cache, log)
        daemon.docker("import", "--change", 'CMD ["bash"]', str(tar), tag, timeout=600)
    daemon.docker("tag", tag, BASE_IMAGE)
    return tag


def wheelhouse(cache: Path = CACHE, log: Path | None = None) -> Path:
    """Wheels of every dependency (and the build backend), for this Python, keyed by pyproject."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}".encode()
    key = _key(
        (REPO / "pyproject.toml").read_bytes(), version, *map(str.encode, IMAGE_PYTHON_EXTRAS)
    )
    house = cache / "wheelhouse" / key
    if house.exists():
        return house
    house.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=house.parent) as tmp:
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", tmp]
        _run([*argv, str(REPO), "setuptools>=68", "wheel", *IMAGE_PYTHON_EXTRAS], log, "pip wheel")
        for own in Path(tmp).glob("mesh_boutique-*.whl"):
            own.unlink()  # the project itself is built in the image, from its source
        Path(tmp).rename(house)
    for old in house.parent.iterdir():
        if old != house and old.is_dir():
            shutil.rmtree(old)  # only one wheelhouse is ever in the build context
    return house


def build_app(daemon: Daemon, cache: Path = CACHE, log: Path | None = None) -> str:
    """The project's image, built offline from the base image and the wheelhouse."""
    base = base_image(daemon, cache, log)
    wheels = wheelhouse(cache, log).relative_to(REPO)
    daemon.docker(
        "build",
        "--build-arg",
        f"BASE={base}",
        "--build-arg",
        f"WHEELS={wheels}",
        "--tag",
        APP_IMAGE,
        str(REPO),
        timeout=900,
    )
    return APP_IMAGE


def _run(argv: list[str], log: Path | None, what: str) -> None:
    done = subprocess.run(argv, capture_output=True)
    output = (done.stdout + done.stderr).decode(errors="replace")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n{output}\n")
    if done.returncode != 0:
        raise DockerError(f"{what} failed ({done.returncode}):\n{output[-3000:]}")
