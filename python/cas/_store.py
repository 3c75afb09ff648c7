"""open / path: read stored files through the cas CLI, digest-checked."""

import builtins
import io
import json
import os
import shutil
import subprocess
import tempfile

from ._run import run_dir


class CasError(OSError):
    """The cas CLI failed: its message is the error's."""


def _cli():
    return os.environ.get("CAS_BIN") or shutil.which("cas") or "cas"


def _env():
    env = dict(os.environ)
    # Under cas run the store is the one holding the run's directory,
    # .cas/runs/NAME, wherever the command's working directory is.
    d = run_dir()
    if d and not env.get("CAS_DIR"):
        env["CAS_DIR"] = os.path.dirname(os.path.dirname(os.path.abspath(d)))
    return env


def _run(args):
    try:
        p = subprocess.run([_cli()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    except FileNotFoundError:
        raise CasError("cas: the cas command is not on PATH (set CAS_BIN to it)") from None
    if p.returncode != 0:
        raise CasError("cas %s: %s" % (" ".join(args), p.stderr.decode(errors="replace").strip()))
    return p.stdout


class _Stream(io.RawIOBase):
    """The standard output of `cas cat`, raising at its end if cas failed."""

    def __init__(self, ref):
        super().__init__()
        self._ref = ref
        try:
            self._p = subprocess.Popen([_cli(), "cat", ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        except FileNotFoundError:
            raise CasError("cas: the cas command is not on PATH (set CAS_BIN to it)") from None
        self._done = False

    def readable(self):
        return True

    def readinto(self, b):
        n = self._p.stdout.readinto(b)
        if n == 0 and len(b) > 0:
            self._finish()
        return n

    def _finish(self):
        if self._done:
            return
        self._done = True
        err = self._p.stderr.read()
        if self._p.wait() != 0:
            raise CasError("cas cat %s: %s" % (self._ref, err.decode(errors="replace").strip()))

    def close(self):
        if not self.closed:
            if not self._done:
                self._done = True
                self._p.kill()
                self._p.wait()
            self._p.stdout.close()
            self._p.stderr.close()
        super().close()


def open(ref, mode="rb", encoding=None, errors=None, newline=None):
    """Open the stored file REF[:path] for reading: "train:labels.csv",
    "runs/base:outputs/out/model.pt", a digest or a prefix of one. mode is
    "rb" (default) or "r" (text). The bytes stream from `cas cat`, which
    checks every chunk and the file's digest before it writes the first
    byte; a damaged or missing file raises CasError.

    A plain path that exists on disk is opened as a local file, so a
    script can take either a REF or a path."""
    if mode not in ("r", "rb", "rt"):
        raise ValueError("cas.open: mode %r: stored files are read-only ('r' or 'rb')" % mode)
    if os.path.exists(ref):
        return builtins.open(ref, mode, encoding=encoding, errors=errors, newline=newline)
    raw = io.BufferedReader(_Stream(ref), buffer_size=1 << 20)
    if mode == "rb":
        return raw
    return io.TextIOWrapper(raw, encoding=encoding or "utf-8", errors=errors, newline=newline)


_paths = {}


def _cache_dir():
    d = os.environ.get("CAS_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "cas", "restored")
    os.makedirs(d, exist_ok=True)
    return d


def path(ref):
    """A local path holding the stored file or directory REF[:path],
    restored (every chunk and file checked against its digest) into a
    cache keyed by digest ($CAS_CACHE, default ~/.cache/cas/restored), so
    that a DataLoader can read a pinned dataset by name. Treat it as
    read-only. A plain path that exists on disk is returned as it is."""
    if os.path.exists(ref):
        return ref
    if ref in _paths and os.path.exists(_paths[ref]):
        return _paths[ref]
    cache = _cache_dir()
    name = ref.rsplit(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1] if ":" in ref else "data"
    name = name or "data"
    tmp = tempfile.mkdtemp(prefix=".restore-", dir=cache)
    try:
        out = json.loads(_run(["restore", "--json", "-q", ref, os.path.join(tmp, name)]))
        d = out["digest"].split(":", 1)[-1]
        final_dir = os.path.join(cache, d)
        final = os.path.join(final_dir, name)
        if not os.path.exists(final):
            os.makedirs(final_dir, exist_ok=True)
            try:
                os.rename(os.path.join(tmp, name), final)
            except OSError:
                if not os.path.exists(final):  # another process won the race
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _paths[ref] = final
    return final
