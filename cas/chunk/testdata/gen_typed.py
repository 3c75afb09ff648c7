# Writes typed.pt: a torch zip checkpoint whose storages are of several
# element types, for TestNaturalLayoutTorch. Run with /usr/bin/python3
# (Debian's python3-torch).
import torch

torch.manual_seed(1)
w = torch.randn(300) * 0.02
state = {
    "fp32": w,
    "bf16": w.to(torch.bfloat16),
    "fp16": w.to(torch.float16),
    "fp64": w.to(torch.float64),
    "int64": torch.arange(100),
    "view": w[10:20],  # shares fp32's storage
    "meta": {"step": 7, "name": "typed"},
}
torch.save(state, "typed.pt")
