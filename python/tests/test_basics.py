"""The package without the CLI: log, seed_everything, checkpoints."""

import json
import os
import random
import sys
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cas  # noqa: E402
from cas import _log  # noqa: E402
from tests.helpers import Env, TempDir, has  # noqa: E402


class TestLog(TempDir):
    def setUp(self):
        super().setUp()
        _log._next_step.clear()

    def lines(self):
        with open(os.path.join(self.dir, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f]

    def test_appends_json_lines_to_the_run_dir(self):
        with Env(CAS_RUN_DIR=self.dir):
            cas.log(loss=0.5, acc=1)
            cas.log(loss=0.25)
            cas.log(step=10, loss=0.125)
            cas.log(loss=0.0625)
        self.assertEqual(self.lines(), [
            {"step": 0, "loss": 0.5, "acc": 1}, {"step": 1, "loss": 0.25},
            {"step": 10, "loss": 0.125}, {"step": 11, "loss": 0.0625}])
        with open(os.path.join(self.dir, "metrics.jsonl")) as f:
            self.assertEqual(f.readline(), '{"acc": 1, "loss": 0.5, "step": 0}\n')

    def test_a_new_process_continues_the_file(self):
        with open(os.path.join(self.dir, "metrics.jsonl"), "w") as f:
            f.write('{"loss": 1}\n\n{"loss": 2}\n')
        with Env(CAS_RUN_DIR=self.dir):
            self.assertEqual(cas.log(loss=3), {"step": 2, "loss": 3})

    def test_non_finite_values_are_left_out_with_a_warning(self):
        with Env(CAS_RUN_DIR=self.dir), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            cas.log(loss=float("nan"), acc=0.5)
            cas.log(loss=float("inf"))
        self.assertEqual(self.lines(), [{"step": 0, "acc": 0.5}, {"step": 1}])
        self.assertEqual(len(w), 2)
        self.assertIn("loss is nan", str(w[0].message))

    def test_bad_input_raises_and_writes_nothing(self):
        with Env(CAS_RUN_DIR=self.dir):
            with self.assertRaises(TypeError):
                cas.log(loss="0.5")
            with self.assertRaises(TypeError):
                cas.log(ok=True)
            with self.assertRaises(ValueError):
                cas.log(step=-1, loss=1)
            with self.assertRaises(ValueError):
                cas.log(step=1.5, loss=1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "metrics.jsonl")))

    def test_outside_a_run_nothing_is_written(self):
        with Env(CAS_RUN_DIR=None):
            self.assertEqual(cas.log(loss=1), {"step": 0, "loss": 1})
            self.assertEqual(cas.log(loss=2), {"step": 1, "loss": 2})
        self.assertEqual(os.listdir(self.dir), [])

    @unittest.skipUnless(has("numpy"), "needs numpy")
    def test_numpy_scalars(self):
        import numpy as np
        with Env(CAS_RUN_DIR=self.dir):
            cas.log(step=np.int64(3), loss=np.float32(0.5))
        self.assertEqual(self.lines(), [{"step": 3, "loss": 0.5}])


class TestSeed(TempDir):
    def test_takes_cas_seed_and_records_what_it_set(self):
        with Env(CAS_RUN_DIR=self.dir, CAS_SEED="7", PYTHONHASHSEED="7", CUBLAS_WORKSPACE_CONFIG=None):
            self.assertEqual(cas.seed_everything(), 7)
            a = random.random()
            random.seed(7)
            self.assertEqual(a, random.random())
            self.assertEqual(os.environ["CUBLAS_WORKSPACE_CONFIG"], ":4096:8")
        with open(os.path.join(self.dir, "determinism.json")) as f:
            rec = json.load(f)
        self.assertEqual(rec["seed"], 7)
        self.assertEqual(rec["pythonhashseed"], "7")
        self.assertEqual(rec["cublas_workspace_config"], ":4096:8")
        if has("torch"):
            self.assertIs(rec["deterministic_algorithms"], True)
            self.assertIs(rec["cudnn_benchmark"], False)
            import torch
            torch.use_deterministic_algorithms(False)

    def test_outside_a_run(self):
        with Env(CAS_RUN_DIR=None, CAS_SEED=None, PYTHONHASHSEED="0"):
            self.assertEqual(cas.seed_everything(), 0)
            self.assertEqual(cas.seed_everything(3, deterministic=False), 3)
        self.assertEqual(os.listdir(self.dir), [])

    def test_an_explicit_seed_other_than_cas_seed_warns(self):
        with Env(CAS_RUN_DIR=None, CAS_SEED="1", PYTHONHASHSEED="0"), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.assertEqual(cas.seed_everything(2, deterministic=False), 2)
        self.assertIn("CAS_SEED=1", str(w[0].message))
        with self.assertRaises(ValueError):
            cas.seed_everything(-1)


class TestCheckpoint(TempDir):
    def test_round_trip_restores_every_rng(self):
        p = os.path.join(self.dir, "sub", "ck.pt")
        g = random.Random(5)
        random.seed(1)
        self.assertEqual(cas.save_checkpoint(p, generators={"g": g}, step=3, weights=[1.0, 2.0]), p)
        want = (random.random(), g.random())
        if has("numpy"):
            import numpy as np
            want_np = np.random.rand()
        random.random()
        g.random()
        state = cas.load_checkpoint(p, generators={"g": g})
        self.assertEqual((random.random(), g.random()), want)
        if has("numpy"):
            self.assertEqual(np.random.rand(), want_np)
        self.assertEqual(state["step"], 3)
        self.assertEqual(state["weights"], [1.0, 2.0])
        self.assertEqual(state["cas"], {"format": 1, "version": cas.__version__})
        self.assertEqual(sorted(os.listdir(os.path.dirname(p))), ["ck.pt"])  # no temporary left

    def test_targets_and_errors(self):
        class Box:
            def __init__(self):
                self.s = {"w": 1}

            def state_dict(self):
                return dict(self.s)

            def load_state_dict(self, s):
                self.s = s

        p = os.path.join(self.dir, "ck.pt")
        b = Box()
        cas.save_checkpoint(p, model=b)
        b2 = Box()
        b2.s = {}
        cas.load_checkpoint(p, model=b2)
        self.assertEqual(b2.s, {"w": 1})
        with self.assertRaises(KeyError):
            cas.load_checkpoint(p, optimizer=b2)
        with self.assertRaises(KeyError):
            cas.load_checkpoint(p, generators={"nope": random.Random()})
        with self.assertRaises(ValueError):
            cas.save_checkpoint(p, cas_rng=1)
        with self.assertRaises(TypeError):
            cas.save_checkpoint(p, generators={"x": object()})


if __name__ == "__main__":
    unittest.main()
