"""Continue an optimizer exported by Orleans.Optim in PyTorch 1.13.

Usage: continue_optimizer.py SPEC.json PARAMS.pt OPTIMIZER.pt GRADS.pt OUT.pt

SPEC.json names the torch optimizer class and its param groups (hyperparameters and how many parameters each
holds). PARAMS.pt contains the parameter values after the cluster's steps, as a dict of name to tensor, in param-ID
order. OPTIMIZER.pt is the exported optimizer state dict. GRADS.pt is a dict {'grads': [[tensor per param] per
step]}. The script loads the state into a fresh optimizer, applies every step's gradients and saves
{'params': [...], 'state_dict': optimizer.state_dict()} to OUT.pt.
"""
import json
import sys

import torch

torch.set_num_threads(1)
spec_path, params_path, optimizer_path, grads_path, out_path = sys.argv[1:6]
with open(spec_path) as spec_file:
    spec = json.load(spec_file)

values = list(torch.load(params_path).values())
params = [v.clone().requires_grad_(True) for v in values]
groups = []
start = 0
for group in spec["groups"]:
    options = dict(group["options"])
    for key in ("betas",):
        if key in options:
            options[key] = tuple(options[key])
    groups.append({"params": params[start:start + group["count"]], **options})
    start += group["count"]

optimizer = getattr(torch.optim, spec["optimizer"])(groups, **spec.get("defaults", {}))
optimizer.load_state_dict(torch.load(optimizer_path))
for step_grads in torch.load(grads_path)["grads"]:
    for param, grad in zip(params, step_grads):
        param.grad = None if grad is None else grad.clone()
    optimizer.step()

torch.save({"params": [p.detach() for p in params], "state_dict": optimizer.state_dict()}, out_path)
