"""save_checkpoint / load_checkpoint: complete checkpoints, with every RNG
state, that resume bit-exactly."""

import os
import pickle
import random

# The key under which a checkpoint keeps its RNG states. cas inspect
# recognises each state by its structure wherever it lies; these keys are
# where this package puts them:
#
#   python            random.getstate()
#   numpy             numpy.random.get_state() (the legacy global generator)
#   torch_cpu         torch.get_rng_state()
#   torch_cuda        [torch.cuda.get_rng_state(i) for every device i]
#   generators        {name: state} of the generators passed in: a
#                     torch.Generator's get_state(), a numpy Generator's
#                     bit_generator.state, a random.Random's getstate()
RNG_KEY = "cas_rng"
# META_KEY holds {"format": 1, "version": cas.__version__}.
META_KEY = "cas"
FORMAT = 1


def _import(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def rng_state(generators=None):
    """Every RNG state this process has: Python's, numpy's legacy global
    generator, torch's CPU generator and each CUDA device's, and those of
    the generators passed in ({name: generator}), as a dict under the
    keys of RNG_KEY."""
    state = {"python": random.getstate()}
    np = _import("numpy")
    if np is not None:
        state["numpy"] = np.random.get_state()
    torch = _import("torch")
    if torch is not None:
        state["torch_cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
    if generators:
        state["generators"] = {name: _generator_state(name, g) for name, g in generators.items()}
    return state


def _generator_state(name, g):
    if hasattr(g, "get_state"):  # torch.Generator
        return g.get_state()
    if hasattr(g, "bit_generator"):  # numpy.random.Generator
        return g.bit_generator.state
    if isinstance(g, random.Random):
        return g.getstate()
    if hasattr(g, "generator") and g.generator is not None:  # a DataLoader with generator=
        return _generator_state(name, g.generator)
    raise TypeError("cas: generator %r is %s, not a torch.Generator, numpy Generator, random.Random "
                    "or DataLoader with a generator" % (name, type(g).__name__))


def _set_generator_state(name, g, s):
    if hasattr(g, "set_state"):
        g.set_state(s)
    elif hasattr(g, "bit_generator"):
        g.bit_generator.state = s
    elif isinstance(g, random.Random):
        g.setstate(s)
    elif hasattr(g, "generator") and g.generator is not None:
        _set_generator_state(name, g.generator, s)
    else:
        raise TypeError("cas: cannot restore generator %r (%s)" % (name, type(g).__name__))


def set_rng_state(state, generators=None):
    """Restore what rng_state returned: each state present is set."""
    if "python" in state:
        random.setstate(_tuples(state["python"]))
    np = _import("numpy")
    if np is not None and "numpy" in state:
        np.random.set_state(state["numpy"])
    torch = _import("torch")
    if torch is not None:
        if "torch_cpu" in state:
            torch.set_rng_state(state["torch_cpu"])
        if "torch_cuda" in state and torch.cuda.is_available():
            cuda = state["torch_cuda"]
            if len(cuda) != torch.cuda.device_count():
                raise RuntimeError("cas: the checkpoint has CUDA RNG states for %d devices, this machine has %d"
                                   % (len(cuda), torch.cuda.device_count()))
            torch.cuda.set_rng_state_all(cuda)
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name not in saved:
            raise KeyError("cas: the checkpoint has no state for generator %r (it has %s)"
                           % (name, ", ".join(sorted(saved)) or "none"))
        _set_generator_state(name, g, saved[name])


def _tuples(v):
    # random.setstate wants tuples; a state read back may hold lists.
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, tuple):
        return tuple(_tuples(x) for x in v)
    return v


def _state_of(v):
    if hasattr(v, "state_dict") and callable(v.state_dict):
        return v.state_dict()
    return v


def save_checkpoint(path, generators=None, **state):
    """Save state (name=value; a model, optimizer or scheduler is saved as
    its state_dict()) together with every RNG state (see RNG_KEY) to path,
    with torch.save when torch is importable, else pickle. The file is
    written beside path and renamed into place, so a crash never leaves a
    half-written checkpoint. `cas inspect --lint` finds nothing missing in
    it. Returns path."""
    from . import __version__
    for k in (RNG_KEY, META_KEY):
        if k in state:
            raise ValueError("cas.save_checkpoint: %r is reserved for cas" % k)
    out = {k: _state_of(v) for k, v in state.items()}
    out[RNG_KEY] = rng_state(generators)
    out[META_KEY] = {"format": FORMAT, "version": __version__}
    path = os.fspath(path)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = "%s.tmp%d" % (path, os.getpid())
    torch = _import("torch")
    try:
        with open(tmp, "wb") as f:
            if torch is not None:
                torch.save(out, f)
            else:
                pickle.dump(out, f, protocol=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return path


def load_checkpoint(path, restore_rng=True, generators=None, map_location="cpu", **targets):
    """Load a checkpoint save_checkpoint wrote and return its state (a dict
    with the names given to save_checkpoint, plus RNG_KEY and META_KEY).

    With restore_rng (the default) every RNG state in it is restored, and
    those of the generators passed in ({name: generator}, as given to
    save_checkpoint), so training continues bit-identically. Each target
    given (model=model, optimizer=opt) has load_state_dict called with the
    state saved under its name."""
    path = os.fspath(path)
    torch = _import("torch")
    if torch is not None:
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
        except TypeError:  # a torch without weights_only
            state = torch.load(path, map_location=map_location)
    else:
        with open(path, "rb") as f:
            state = pickle.load(f)
    if not isinstance(state, dict):
        raise ValueError("cas.load_checkpoint: %s holds a %s, not a checkpoint dict" % (path, type(state).__name__))
    for name, target in targets.items():
        if name not in state:
            raise KeyError("cas.load_checkpoint: %s has no %r" % (path, name))
        target.load_state_dict(state[name])
    if restore_rng:
        if RNG_KEY not in state:
            raise KeyError("cas.load_checkpoint: %s has no RNG states (%r): it was not written by "
                           "cas.save_checkpoint; pass restore_rng=False to load it anyway" % (path, RNG_KEY))
        set_rng_state(state[RNG_KEY], generators)
    return state
