"""A tiny training script that uses cas: the acceptance tests run it.

    train_tiny.py --epochs N [--save-at K --save PATH] [--resume PATH] --out PATH

Every source of randomness a real script has: dropout (torch CPU RNG), a
shuffling DataLoader with its own generator, numpy noise and Python's
random."""

import argparse
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cas  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, required=True)
ap.add_argument("--save-at", type=int, default=-1, help="save a checkpoint after this epoch")
ap.add_argument("--save")
ap.add_argument("--resume")
ap.add_argument("--out", required=True)
args = ap.parse_args()

cas.seed_everything()
torch.set_num_threads(1)
data = torch.from_numpy(np.random.RandomState(0).randn(64, 8).astype("float32"))
target = (data.sum(1, keepdim=True) > 0).float()
gen = torch.Generator().manual_seed(1)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, target), batch_size=8,
                                     shuffle=True, generator=gen)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
# TINY_LR_FROM=N: another learning rate from step N on (a curve that diverges).
lr_from = int(os.environ.get("TINY_LR_FROM", "-1"))
epoch, step = 0, 0
if args.resume:
    state = cas.load_checkpoint(args.resume, generators={"loader": gen}, model=model, optimizer=opt)
    epoch, step = state["epoch"], state["step"]

while epoch < args.epochs:
    for x, y in loader:
        x = x + torch.from_numpy(np.random.normal(0, 0.01, x.shape).astype("float32"))
        if random.random() < 0.5:
            x, y = x.flip(0), y.flip(0)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step == lr_from:
            for g in opt.param_groups:
                g["lr"] = 0.3
        cas.log(step=step, loss=loss)
    epoch += 1
    if epoch == args.save_at and args.save:
        cas.save_checkpoint(args.save, generators={"loader": gen}, model=model, optimizer=opt, epoch=epoch, step=step)
cas.save_checkpoint(args.out, generators={"loader": gen}, model=model, optimizer=opt, epoch=epoch, step=step)
