"""seed_everything: seeds every generator and records what it set."""

import os
import random
import warnings

from ._run import run_dir, write_json_atomic

# The file in CAS_RUN_DIR that cas run reads the determinism settings from
# (schema.DeterminismFile).
DETERMINISM_FILE = "determinism.json"

_CUBLAS = (":4096:8", ":16:8")


def _import(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def seed_everything(seed=None, deterministic=True):
    """Seed Python's random, numpy's legacy generator and torch (CPU and
    every CUDA device) with one seed, and return it.

    seed defaults to $CAS_SEED (set by `cas run --seed`), else 0. A seed
    given that differs from $CAS_SEED is used, with a warning: the manifest
    records CAS_SEED.

    With deterministic=True, torch runs deterministic algorithms only
    (torch.use_deterministic_algorithms), cuDNN deterministically and
    without benchmarking, and CUBLAS_WORKSPACE_CONFIG is set to :4096:8
    when unset (it must be set before CUDA starts). With False the
    switches are left as they are.

    Under `cas run`, what was actually set is written to
    $CAS_RUN_DIR/determinism.json, which the manifest records
    (environment.torch, settings_from "run").
    """
    env_seed = os.environ.get("CAS_SEED")
    if seed is None:
        seed = int(env_seed) if env_seed not in (None, "") else 0
    elif env_seed not in (None, "") and int(env_seed) != int(seed):
        warnings.warn("cas.seed_everything(%d) while cas run gave CAS_SEED=%s: the manifest records %s"
                      % (seed, env_seed, env_seed), stacklevel=2)
    seed = int(seed)
    if seed < 0 or seed >= 2**32:
        raise ValueError("seed %d is outside [0, 2**32): numpy cannot take it" % seed)
    record = {"seed": seed}
    random.seed(seed)
    if os.environ.get("PYTHONHASHSEED") in (None, "", "random"):
        warnings.warn("PYTHONHASHSEED is not set: set and iteration order of str keys vary between runs "
                      "(cas run sets it; elsewhere export PYTHONHASHSEED=0 before starting Python)", stacklevel=2)
    record["pythonhashseed"] = os.environ.get("PYTHONHASHSEED")

    np = _import("numpy")
    if np is not None:
        np.random.seed(seed)
        record["numpy"] = np.__version__

    if deterministic and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS[0]
    torch = _import("torch")
    if torch is not None:
        torch.manual_seed(seed)  # every CUDA device too
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        if deterministic:
            if torch.cuda.is_available() and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in _CUBLAS:
                warnings.warn("CUBLAS_WORKSPACE_CONFIG=%s: cuBLAS is deterministic only with :4096:8 or :16:8"
                              % os.environ.get("CUBLAS_WORKSPACE_CONFIG"), stacklevel=2)
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        record.update({
            "torch": torch.__version__,
            "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        })
    record["cublas_workspace_config"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    d = run_dir()
    if d is not None:
        write_json_atomic(os.path.join(d, DETERMINISM_FILE), record)
    return seed
