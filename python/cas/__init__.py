"""cas: the Python companion of the cas CLI.

    import cas
    seed = cas.seed_everything()                # CAS_SEED under `cas run`
    ...
    cas.log(step=i, loss=loss.item())           # $CAS_RUN_DIR/metrics.jsonl
    cas.save_checkpoint("out/ckpt.pt", model=model, optimizer=opt)
    state = cas.load_checkpoint("out/ckpt.pt", model=model, optimizer=opt)
    with cas.open("train:labels.csv") as f: ...  # a stored file, digest-checked

Standard library only; numpy and torch are used when importable. Every
function works outside `cas run` too. See docs/python.md.
"""

from ._run import run_dir, in_run
from ._seed import seed_everything
from ._ckpt import save_checkpoint, load_checkpoint, rng_state, set_rng_state, RNG_KEY
from ._log import log
from ._store import open, path, CasError

# The version of the cas source tree this package belongs to; the CLI
# built from the same tree reports it (buildinfo.Release).
__version__ = "0.1.0"

__all__ = [
    "seed_everything", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state",
    "log", "open", "path", "run_dir", "in_run", "CasError", "RNG_KEY", "__version__",
]
