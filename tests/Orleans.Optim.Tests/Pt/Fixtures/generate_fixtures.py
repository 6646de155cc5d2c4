"""Write the real torch .pt fixtures of the .pt reader tests, and what torch.load returns for each.

Run from the repository root with Debian's torch (PyTorch 1.13):

    /usr/bin/python3 tests/Orleans.Optim.Tests/Pt/Fixtures/generate_fixtures.py

Each NAME.pt gets NAME.expected.json, the output of pt_oracle's describer on torch.load(NAME.pt). The files are
committed, so the tests need torch only for the checks that load our output.
"""

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pt_oracle  # noqa: E402


def adam_state():
    """Adam after 3 steps, two parameter groups, the second with amsgrad (adds max_exp_avg_sq)."""
    model = pt_oracle.adam_model()
    optimizer = pt_oracle.adam_optimizer(model)
    for step in range(3):
        pt_oracle.train_step(model, optimizer, step)
    return optimizer.state_dict()


def sgd_state():
    """SGD with Nesterov momentum after 2 steps (momentum_buffer tensors)."""
    model = pt_oracle.adam_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    for step in range(2):
        pt_oracle.train_step(model, optimizer, step)
    return optimizer.state_dict()


def batch_norm_model():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model.train()
    model(torch.linspace(-2.0, 2.0, 5 * 4).reshape(5, 4))
    return model


def model_state():
    """model.state_dict() of a small nn.Sequential: an OrderedDict with _metadata and an int64 buffer."""
    return batch_norm_model().state_dict()


def parameters_state():
    """state_dict(keep_vars=True): parameters pickle through torch._utils._rebuild_parameter."""
    return batch_norm_model().state_dict(keep_vars=True)


def views_state():
    """An optimizer-like state with views (offsets, strides, shared storages) and every supported dtype."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    big = torch.arange(100, dtype=torch.float32) * 0.5
    same = torch.tensor([3.25, -1.5])
    return {
        "state": {
            0: {
                "transposed": base.t(),
                "offset_slice": big[10:20],
                "strided": big[::3],
                "column": base[:, 2],
                "row": base[2],
                "block": base[1:3, 2:5],
                "shared_low": big[0:50],
                "shared_high": big[50:100],
                "scalar_view": big[7],
                "empty_view": big[5:5],
            },
            1: {
                "float64": torch.tensor([1.5, -0.0, float("inf"), float("nan"), 1e-300], dtype=torch.float64),
                "int64": torch.tensor([-(2**63), 2**63 - 1, 0, -1], dtype=torch.int64),
                "bool": torch.tensor([[True, False], [False, True]]),
                "float16": torch.tensor([1.0, -2.5, 65504.0], dtype=torch.float16),
                "bfloat16": torch.tensor([1.0, -3.0, 1e30], dtype=torch.bfloat16),
                "int32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
                "int16": torch.tensor([-300, 300], dtype=torch.int16),
                "int8": torch.tensor([-128, 127], dtype=torch.int8),
                "uint8": torch.tensor([0, 255], dtype=torch.uint8),
                "empty_2d": torch.zeros(0, 3),
                "zero_d_int": torch.tensor(7),
            },
        },
        "param_groups": [
            {
                "lr": 0.1,
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "nesterov": False,
                "foreach": None,
                "name": "gr\u00f6\u00dfe \u2713",
                "big": 2**62,
                "negative": -5,
                "params": [0, 1],
            }
        ],
        "same_tensor_twice": [same, same],
        "nested": ([1, (2.5, None)], {"k": [True]}, ()),
    }


def expanded_state():
    """A tensor expanded with stride 0, which the reader rejects because it is larger than its storage."""
    return {"state": {0: {"expanded": torch.zeros(1).expand(1000)}}, "param_groups": []}


def main():
    torch.set_num_threads(1)
    fixtures = {
        "adam_state": adam_state(),
        "sgd_state": sgd_state(),
        "model_state": model_state(),
        "parameters_state": parameters_state(),
        "views_state": views_state(),
        "expanded_state": expanded_state(),
    }
    for name, value in fixtures.items():
        path = os.path.join(HERE, name + ".pt")
        torch.save(value, path)
        with open(os.path.join(HERE, name + ".expected.json"), "w", encoding="utf-8") as out:
            json.dump(pt_oracle.describe_file(path), out, indent=1, ensure_ascii=False)
            out.write("\n")

    # The legacy (non-zip) format, which the reader must recognize and explain.
    torch.save({"state": {}, "param_groups": []}, os.path.join(HERE, "legacy_format.pt"), _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
