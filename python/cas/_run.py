"""Where the run is: cas run exports CAS_RUN_DIR, CAS_SEED and CAS_RANK."""

import os


def run_dir():
    """The run's directory ($CAS_RUN_DIR), or None outside `cas run`."""
    d = os.environ.get("CAS_RUN_DIR")
    return d or None


def in_run():
    """Whether this process runs under `cas run` (or `cas reproduce`)."""
    return run_dir() is not None


def write_json_atomic(path, obj):
    """Write obj as JSON to path, atomically (a reader sees all or nothing)."""
    import json
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
