"""log: the run's metrics history, one JSON line per call."""

import json
import math
import numbers
import os
import warnings

from ._run import run_dir

# The file in CAS_RUN_DIR that cas run records as the metrics history
# (schema.HistoryFile).
HISTORY_FILE = "metrics.jsonl"

_next_step = {}


def _number(name, v):
    if hasattr(v, "item") and callable(v.item):  # a numpy scalar, a 0-d tensor
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("cas.log: %s is %r, not a number" % (name, v))
    if isinstance(v, numbers.Integral):
        return int(v)
    return float(v)


def _records(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


def log(step=None, **metrics):
    """Append one record to the run's metrics history,
    $CAS_RUN_DIR/metrics.jsonl: {"step": step, name: value, ...}.

    step is a non-negative integer; by default, the record's index in the
    file (0, 1, 2, ...). Values are numbers (Python, numpy scalars or
    one-element tensors). A value that is NaN or infinite cannot be kept
    (the history holds finite numbers): it is left out with a warning.

    Returns the record written. Outside `cas run` nothing is written and
    the record is only returned.
    """
    record = {}
    for name, v in metrics.items():
        if name == "step":
            continue
        x = _number(name, v)
        if isinstance(x, float) and not math.isfinite(x):
            warnings.warn("cas.log: %s is %r at this step, not logged (the metrics history holds finite numbers)"
                          % (name, x), stacklevel=2)
            continue
        record[name] = x
    d = run_dir()
    path = os.path.join(d, HISTORY_FILE) if d else None
    if step is None:
        if path not in _next_step:
            _next_step[path] = _records(path) if path else 0
        step = _next_step[path]
    step = _number("step", step)
    if not isinstance(step, int) or step < 0:
        raise ValueError("cas.log: step %r is not a non-negative integer" % (step,))
    _next_step[path] = step + 1
    out = {"step": step}
    out.update(record)
    if path:
        line = json.dumps(out, sort_keys=True, allow_nan=False) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    return out
