"""Float checkpoints for the float codec's rows of `make bench`.

Written by real PyTorch (Debian's python3-torch; run with /usr/bin/python3).
The weights are generated, not downloaded: drawn like trained transformer
weights (normal, std 0.02; LayerNorm gains near 1, biases near 0). The Adam
state comes from a real torch.optim.Adam after a few hundred steps on a
small model.

    /usr/bin/python3 scripts/genckpt/floats.py OUT [--mb 64] [--big-mb 1024]

writes into OUT:
    weights_fp32.pt, weights_bf16.pt, weights_fp16.pt  about --mb MiB of FP32
        weights (half that for the 16-bit ones), one transformer-like
        state dict per dtype
    adam.pt     the state_dict of torch.optim.Adam (exp_avg, exp_avg_sq, FP32)
                after 300 steps on a small MLP
    big_bf16.pt --big-mb MiB of BF16 weights, for push and restore times
and prints the files and their sizes.
"""
import argparse
import os

import torch


def transformer(d, layers, gen):
    """A GPT-like state dict of FP32 weights."""
    sd = {}
    for i in range(layers):
        p = f"h.{i}."
        sd[p + "ln_1.weight"] = 1 + 0.02 * torch.randn(d, generator=gen)
        sd[p + "ln_1.bias"] = 0.02 * torch.randn(d, generator=gen)
        sd[p + "attn.c_attn.weight"] = 0.02 * torch.randn(d, 3 * d, generator=gen)
        sd[p + "attn.c_attn.bias"] = torch.zeros(3 * d)
        sd[p + "attn.c_proj.weight"] = 0.02 * torch.randn(d, d, generator=gen)
        sd[p + "ln_2.weight"] = 1 + 0.02 * torch.randn(d, generator=gen)
        sd[p + "ln_2.bias"] = 0.02 * torch.randn(d, generator=gen)
        sd[p + "mlp.c_fc.weight"] = 0.02 * torch.randn(d, 4 * d, generator=gen)
        sd[p + "mlp.c_proj.weight"] = 0.02 * torch.randn(4 * d, d, generator=gen)
    return sd


def adam_state(gen):
    """A small MLP trained 300 steps with Adam on a regression task."""
    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.GELU(),
        torch.nn.Linear(1024, 1024), torch.nn.GELU(),
        torch.nn.Linear(1024, 256))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w_true = torch.randn(256, 256, generator=gen) / 16
    for _ in range(300):
        x = torch.randn(64, 256, generator=gen)
        loss = torch.nn.functional.mse_loss(model(x), torch.tanh(x @ w_true))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--big-mb", type=int, default=1024)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    gen = torch.Generator().manual_seed(2026)

    d = 512
    per_layer = 12 * d * d * 4  # bytes of FP32 weights per layer
    sd = transformer(d, max(1, a.mb * 2**20 // per_layer), gen)
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        torch.save({k: v.to(dt) for k, v in sd.items()}, os.path.join(a.out, f"weights_{name}.pt"))
    torch.save(adam_state(gen), os.path.join(a.out, "adam.pt"))

    if a.big_mb > 0:
        big = {}
        n = 64 * 2**20  # BF16 elements per tensor: 128 MiB
        total = a.big_mb * 2**20 // 2
        i = 0
        while total > 0:
            k = min(n, total)
            big[f"layer.{i}.weight"] = (0.02 * torch.randn(k, generator=gen)).to(torch.bfloat16)
            total -= k
            i += 1
        torch.save(big, os.path.join(a.out, "big_bf16.pt"))

    for f in sorted(os.listdir(a.out)):
        print(f, os.path.getsize(os.path.join(a.out, f)))


if __name__ == "__main__":
    main()
