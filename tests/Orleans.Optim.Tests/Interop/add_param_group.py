"""Run torch.optim with a param group added mid-run, as the cluster test does.

Usage: add_param_group.py SPEC.json INPUTS.pt OUT.pt

SPEC.json: {"optimizer": name, "defaults": {...}, "groups": [{"options": {...}, "count": n}, ...],
"added_group": {"options": {...}, "count": n}, "add_before_step": k}. INPUTS.pt: {"params": [...],
"added_params": [...], "grads": [[tensor or None per param] per step]}, where a step before the addition lists
only the first groups' params. OUT.pt: {"params_after": [[tensor per param] per step], "state_dict": ...}.
"""
import json
import sys

import torch

torch.set_num_threads(1)
spec_path, inputs_path, out_path = sys.argv[1:4]
with open(spec_path) as spec_file:
    spec = json.load(spec_file)
inputs = torch.load(inputs_path)


def options(raw):
    return {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}


params = [p.clone().requires_grad_(True) for p in inputs["params"]]
groups = []
start = 0
for group in spec["groups"]:
    groups.append({"params": params[start:start + group["count"]], **options(group["options"])})
    start += group["count"]
optimizer = getattr(torch.optim, spec["optimizer"])(groups, **options(spec["defaults"]))

params_after = []
for step, step_grads in enumerate(inputs["grads"], start=1):
    if step == spec["add_before_step"]:
        added = [p.clone().requires_grad_(True) for p in inputs["added_params"]]
        optimizer.add_param_group({"params": added, **options(spec["added_group"]["options"])})
        params.extend(added)
    for param, grad in zip(params, step_grads):
        param.grad = None if grad is None else grad.clone()
    optimizer.step()
    params_after.append([p.detach().clone() for p in params])

torch.save({"params_after": params_after, "state_dict": optimizer.state_dict()}, out_path)
