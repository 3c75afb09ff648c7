import os
import shutil
import subprocess
import tempfile
import unittest


def cas_bin():
    return os.environ.get("CAS_BIN") or shutil.which("cas")


def needs_cas(f):
    return unittest.skipUnless(cas_bin(), "needs the cas CLI (CAS_BIN or cas on PATH)")(f)


def has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


class Env:
    """Set environment variables for a test, restored after it."""

    def __init__(self, **kv):
        self.kv = kv

    def __enter__(self):
        self.old = {k: os.environ.get(k) for k in self.kv}
        for k, v in self.kv.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return self

    def __exit__(self, *a):
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cas(*args, cwd=None, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([cas_bin()] + list(args), cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise AssertionError("cas %s: exit %d\n%s\n%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


class TempDir(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cas-py-")
        self.addCleanup(shutil.rmtree, self.dir, True)
