"""A PEP 517 build backend in the standard library alone, so that
`pip install ./python` works offline: it packs cas/ into a wheel."""

import base64
import hashlib
import os
import re
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "cas_ml"


def _version():
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        m = re.search(r'^version = "([^"]+)"', f.read(), re.M)
    return m.group(1)


def _record_line(name, data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, h, len(data))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _metadata():
    return ("Metadata-Version: 2.1\nName: cas-ml\nVersion: %s\n"
            "Summary: The Python companion of the cas CLI\nRequires-Python: >=3.8\n" % _version())


def _write_wheel(wheel_directory, files):
    version = _version()
    dist = "%s-%s.dist-info" % (NAME, version)
    name = "%s-%s-py3-none-any.whl" % (NAME, version)
    files = dict(files)
    files[dist + "/METADATA"] = _metadata().encode()
    files[dist + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: cas_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(n, d) for n, d in sorted(files.items())] + [dist + "/RECORD,,"]
    files[dist + "/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for n in sorted(files):
            info = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, files[n])
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    pkg = os.path.join(HERE, "cas")
    for fn in sorted(os.listdir(pkg)):
        if fn.endswith(".py"):
            with open(os.path.join(pkg, fn), "rb") as f:
                files["cas/" + fn] = f.read()
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, {"cas_ml.pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError("install from the source tree: pip install ./python")
