"""The wheel of this installed package, rebuilt from its files, for a logged model to carry.

A logged model whose requirements name ``wordnet-4gram`` would make whoever
serves it in a fresh environment fetch the package from an index (where
nothing by that name need be ours); one that carries the wheel installs
exactly the code that logged it.  Nothing is downloaded or compiled: the
installed distribution's RECORD lists its files; they go into a zip with the
installed WHEEL metadata (and so its platform tag) and a fresh RECORD.  Left
out are what the installer wrote (INSTALLER, REQUESTED, direct_url.json,
bytecode) and the console script in bin/, which pip makes again from
entry_points.txt.

An editable install or a source tree has no such set of files (the kernels and
the package are in a checkout): :func:`installed_wheel` then returns None, and
the caller falls back to a plain requirement.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from wordnet.errors import WordNetError

DISTRIBUTION = "wordnet-4gram"
INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}
# Stored as they are: the shipped data, compressed already (deflating it again cost a
# fifth of a second a logged model and saved nothing).  The rest is deflated at level 1:
# a third of level 6's time for a wheel 4 % larger (3.7 MB).
PACKED = {".xz"}


class NotRebuildable(WordNetError):
    """The running package is not a plain install of the distribution."""


@functools.cache                              # one wheel per process, however many models
def installed_wheel() -> Path | None:
    """The path of the rebuilt wheel, in a temporary folder kept for the process; None
    when the package does not run from a regular install (see the module's docstring)."""
    try:
        return build(Path(tempfile.mkdtemp(prefix="wordnet-wheel-")))
    except NotRebuildable:
        return None


def build(dest: Path) -> Path:
    """Write the wheel of the installed distribution into ``dest``; return its path."""
    dist = _regular_install()
    info_dir = next(f.parent.as_posix() for f in dist.files    # wordnet_4gram-0.1.0.dist-info
                    if f.name == "METADATA")
    root = Path(dist.locate_file(""))                    # site-packages
    tags = [line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines()
            if line.startswith("Tag:")]
    name = dist.metadata["Name"].replace("-", "_")
    path = dest / f"{name}-{dist.version}-{'.'.join(tags)}.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as wheel:
        for file in dist.files:
            posix = file.as_posix()
            if (posix.startswith("../") or file.suffix == ".pyc"
                    or (file.parent.as_posix() == info_dir and file.name in INSTALLER_FILES)):
                continue
            data = (root / file).read_bytes()
            wheel.writestr(posix, data, zipfile.ZIP_STORED if file.suffix in PACKED else None)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{posix},sha256={digest.decode()},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        wheel.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return path


def _regular_install() -> metadata.Distribution:
    """The distribution, if the running ``wordnet`` package is its installed copy."""
    import wordnet
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise NotRebuildable(f"{DISTRIBUTION} is not installed") from None
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        raise NotRebuildable(f"{DISTRIBUTION} is an editable install")
    package = Path(wordnet.__file__).resolve().parent
    if dist.files is None or dist.read_text("WHEEL") is None:
        raise NotRebuildable(f"{DISTRIBUTION} was not installed from a wheel")
    if package != Path(dist.locate_file("wordnet")).resolve():
        raise NotRebuildable(f"wordnet runs from {package}, not from the installed {DISTRIBUTION}")
    return dist
