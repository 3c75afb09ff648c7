"""Acceptance with real PyTorch and the cas CLI: bit-identical training,
bit-identical resume, lint-clean checkpoints, the metrics history of a
run, and stored files read by name."""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cas  # noqa: E402
from tests.helpers import TempDir, cas as run_cas, cas_bin, has, needs_cas  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "train_tiny.py")
PY = os.path.dirname(HERE)


def train(*args, env=None):
    e = dict(os.environ, PYTHONHASHSEED="0", CAS_SEED="3")
    e.pop("CAS_RUN_DIR", None)
    e.update(env or {})
    p = subprocess.run([sys.executable, TRAIN] + list(args), env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise AssertionError("train_tiny.py %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr))


@unittest.skipUnless(has("torch") and has("numpy"), "needs torch and numpy (/usr/bin/python3 on Debian)")
@needs_cas
class TestTorch(TempDir):
    def path(self, name):
        return os.path.join(self.dir, name)

    def diff(self, a, b):
        """cas diff --json of two checkpoints: every change must be equal."""
        out = json.loads(run_cas("diff", "--json", a, b).stdout)
        return out

    def assert_same_checkpoint(self, a, b):
        d = self.diff(a, b)
        tensors = d.get("tensors", [])
        rng = d.get("rng_states", [])
        self.assertTrue(rng, "cas diff found no RNG states: %s" % d)
        changed = [t for t in tensors if t.get("op") != "equal"] + [s for s in rng if s.get("op") != "equal"]
        self.assertEqual(changed, [], "cas diff %s %s: %s" % (a, b, json.dumps(d)[:2000]))
        return d

    def test_twice_is_bit_identical_and_resume_continues_bit_identically(self):
        train("--epochs", "3", "--out", self.path("a.pt"))
        train("--epochs", "3", "--out", self.path("b.pt"))
        d = self.assert_same_checkpoint(self.path("a.pt"), self.path("b.pt"))
        kinds = sorted({s["kind"] for s in d["rng_states"]})
        self.assertEqual(kinds, ["numpy_mt19937", "python_random", "torch_cpu"])
        # The generator of the DataLoader is kept too: two torch CPU states.
        self.assertEqual(sum(1 for s in d["rng_states"] if s["kind"] == "torch_cpu"), 2)
        # Interrupted after epoch 2, resumed from the checkpoint written then.
        train("--epochs", "2", "--save-at", "2", "--save", self.path("mid.pt"), "--out", self.path("c2.pt"))
        train("--epochs", "3", "--resume", self.path("mid.pt"), "--out", self.path("c.pt"))
        self.assert_same_checkpoint(self.path("a.pt"), self.path("c.pt"))
        # And a different seed is not the same run: the check can fail.
        train("--epochs", "3", "--out", self.path("s4.pt"), env={"CAS_SEED": "4"})
        d = self.diff(self.path("a.pt"), self.path("s4.pt"))
        self.assertTrue([t for t in d["tensors"] if t.get("op") != "equal"])

    def test_lint(self):
        train("--epochs", "1", "--out", self.path("a.pt"))
        p = run_cas("inspect", "--lint", self.path("a.pt"), check=False)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "no warnings\n", ""), p)
        # The same training state saved by hand, without RNG states.
        script = ("import torch; m = torch.nn.Linear(2, 1); o = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9);"
                  "m(torch.ones(1, 2)).sum().backward(); o.step();"
                  "torch.save({'model': m.state_dict(), 'optimizer': o.state_dict()}, %r)" % self.path("bare.pt"))
        subprocess.run([sys.executable, "-c", script], check=True)
        p = run_cas("inspect", "--lint", "--json", self.path("bare.pt"), check=False)
        self.assertEqual(p.returncode, 4, p)  # inspect --lint: 4 when it warns
        codes = sorted(w["code"] for w in json.loads(p.stdout)["warnings"])
        self.assertEqual(codes, ["no-numpy-rng", "no-python-rng", "no-torch-rng"])

    def test_a_run_records_history_and_determinism(self):
        store = self.path("proj")
        os.makedirs(store)
        run_cas("init", cwd=store)
        env = {"PYTHONPATH": PY}
        run_cas("run", "--name", "tiny", "--seed", "3", "--", sys.executable, TRAIN, "--epochs", "1",
                "--out", "out.pt", cwd=store, env=env)
        show = json.loads(run_cas("show", "--json", "tiny", cwd=store).stdout)
        m = show["manifest"]
        self.assertEqual(m["metrics_history"]["records"], 8)
        self.assertEqual(m["metrics_history"]["names"], ["loss"])
        self.assertEqual(show["metrics_history"][0]["last_step"], 8)
        self.assertEqual(m["metrics"]["loss"], show["metrics_history"][0]["final"])
        torch = m["environment"]["torch"]
        self.assertEqual((torch["settings_from"], torch["deterministic_algorithms"]), ("run", True))
        # The run's files are read back by name, checked against their
        # digests, from inside a run too.
        code = "import cas, json; print(json.loads(cas.open('tiny:outputs/tiny/metrics.jsonl').readline())['step'])"
        run_cas("run", "--name", "reader", "--", sys.executable, "-c", code, cwd=store, env=env)
        log = run_cas("show", "--json", "reader", cwd=store).stdout
        stdout = json.loads(log)["manifest"]["logs"]["stdout"]["digest"]
        self.assertEqual(run_cas("cat", stdout, cwd=store).stdout, "1\n")

    @unittest.skipUnless(shutil.which("git"), "needs git")
    def test_a_reproduction_whose_curve_diverges_fails_naming_the_step(self):
        proj = self.path("proj")
        os.makedirs(proj)
        shutil.copy(TRAIN, os.path.join(proj, "train.py"))
        git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": "/dev/null"}
        env = dict(os.environ, PYTHONPATH=PY, **git)
        for args in (["init", "-q", "-b", "main"], ["add", "train.py"], ["commit", "-qm", "train"]):
            subprocess.run(["git"] + args, cwd=proj, env=env, check=True)
        run_cas("init", cwd=proj)
        env = {"PYTHONPATH": PY, **git}
        run_cas("run", "--name", "base", "--seed", "3", "--", sys.executable, "train.py", "--epochs", "2",
                "--out", "out.pt", cwd=proj, env=env)
        p = run_cas("reproduce", "base", "--curve", "--tolerance", "0", cwd=proj, env=env)
        self.assertIn("curve: 16 values of loss compared, largest relative difference 0\n", p.stdout)
        self.assertTrue(p.stdout.rstrip().endswith("EXACT"), p.stdout)
        # The learning rate changes after step 11's update: step 12's loss is
        # computed before its update, with the same weights; the first update
        # at the new rate is step 12's, so step 13's loss is the first to differ.
        env["TINY_LR_FROM"] = "11"
        p = run_cas("reproduce", "base", "--curve", "--tolerance", "1e-6", cwd=proj, env=env, check=False)
        self.assertEqual(p.returncode, 4, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"\nFAIL: the curves diverge: metric loss at step 13 is [0-9.]+, recorded [0-9.]+ "
                                   r"\(relative difference [0-9.e-]+\)\n")

    def test_open_and_path_read_stored_files(self):
        store = self.path("s")
        os.makedirs(os.path.join(store, "data", "sub"))
        with open(os.path.join(store, "data", "sub", "a.csv"), "w") as f:
            f.write("x,y\n1,2\n")
        run_cas("init", cwd=store)
        run_cas("push", "data", "--name", "ds", cwd=store)
        old = os.getcwd()
        os.chdir(store)
        self.addCleanup(os.chdir, old)
        os.environ["CAS_CACHE"] = self.path("cache")
        self.addCleanup(os.environ.pop, "CAS_CACHE")
        with cas.open("ds:sub/a.csv", "r") as f:
            self.assertEqual(f.read(), "x,y\n1,2\n")
        with cas.open("ds:sub/a.csv") as f:
            self.assertEqual(f.read(), b"x,y\n1,2\n")
        p = cas.path("ds:sub")
        self.assertEqual(os.listdir(p), ["a.csv"])
        self.assertTrue(p.startswith(self.path("cache")))
        self.assertEqual(cas.path("ds:sub"), p)
        with self.assertRaises(cas.CasError) as e:
            with cas.open("ds:nothing.csv") as f:
                f.read()
        self.assertIn("nothing.csv", str(e.exception))
        with self.assertRaises(cas.CasError):
            cas.path("nosuchref")


if __name__ == "__main__":
    unittest.main()
