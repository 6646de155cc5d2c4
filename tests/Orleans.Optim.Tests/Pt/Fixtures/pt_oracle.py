"""PyTorch side of the .pt tests: describes what torch.load returns and runs optimizers on loaded state.

Runs under Debian's /usr/bin/python3 with python3-torch (PyTorch 1.13). The tests pass this file's text to
``python3 -c`` with a command and paths, and generate_fixtures.py imports it.

Commands (each prints one JSON document to stdout):
  describe PATH                  the value that torch.load returns, with exact types, key order and tensor bytes
  adam-step ORIGINAL CANDIDATE   loads both Adam state dicts into the fixture's Adam, steps once, compares
  adam-load PATH                 loads a state dict into Adam over the fixture model, steps once, describes the new state
"""

import collections
import json
import struct
import sys
import zipfile

import torch


def adam_model():
    """Return the small model whose parameters the Adam fixtures and checks use, with fixed initial weights."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def adam_optimizer(model):
    """Return the Adam optimizer of the fixture: two parameter groups with different hyperparameters."""
    return torch.optim.Adam(
        [
            {"params": model[0].parameters()},
            {"params": model[2].parameters(), "lr": 5e-4, "betas": (0.8, 0.95), "weight_decay": 0.01, "amsgrad": True},
        ],
        lr=1e-3,
    )


def train_step(model, optimizer, step_index):
    """Run one deterministic forward, backward and optimizer step."""
    inputs = torch.linspace(-1.0, 1.0, 8 * 4).reshape(8, 4) * (step_index + 1)
    optimizer.zero_grad()
    loss = (model(inputs) ** 2).mean()
    loss.backward()
    optimizer.step()


def tensor_bytes(tensor):
    """Return the contiguous little-endian element bytes of a tensor as hex."""
    flat = tensor.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes().hex()


class Describer:
    """Converts a loaded value into JSON that names every Python type exactly and keeps key order."""

    def __init__(self):
        self._tensor_ids = {}

    def describe(self, value):
        """Return the JSON description of one value and, recursively, of its items."""
        kind = type(value)

        if value is None:
            return {"type": "None"}
        if kind is bool:
            return {"type": "bool", "value": value}
        if kind is int:
            return {"type": "int", "value": str(value)}
        if kind is float:
            return {"type": "float", "bits": struct.pack(">d", value).hex()}
        if kind is str:
            return {"type": "str", "value": value}

        if kind is tuple:
            return {"type": "tuple", "items": [self.describe(item) for item in value]}
        if kind is list:
            return {"type": "list", "items": [self.describe(item) for item in value]}
        if kind is dict:
            return {"type": "dict", "items": [[self.describe(k), self.describe(v)] for k, v in value.items()]}
        if kind is collections.OrderedDict:
            described = {"type": "OrderedDict", "items": [[self.describe(k), self.describe(v)] for k, v in value.items()]}
            if hasattr(value, "_metadata"):
                described["metadata"] = self.describe(value._metadata)
            return described

        if isinstance(value, torch.Tensor):
            identity = self._tensor_ids.setdefault(id(value), len(self._tensor_ids))
            return {
                "type": kind.__name__,
                "dtype": str(value.dtype).replace("torch.", ""),
                "shape": list(value.shape),
                "data": tensor_bytes(value),
                "requires_grad": value.requires_grad,
                "contiguous": value.is_contiguous(),
                "storage_offset": value.storage_offset(),
                "device": str(value.device),
                "identity": identity,
            }

        raise TypeError(f"unexpected type {kind!r} in a loaded state")


def describe_file(path):
    """Return the JSON description of a .pt file: its zip entries, the zip CRC check and the loaded value."""
    with zipfile.ZipFile(path) as archive:
        entries = [info.filename for info in archive.infolist()]
        bad_entry = archive.testzip()
    value = torch.load(path)
    return {"entries": entries, "bad_entry": bad_entry, "value": Describer().describe(value)}


def adam_step(original_path, candidate_path):
    """Step the fixture Adam once from each saved state and report whether the parameters match bit for bit."""
    results = []
    for path in (original_path, candidate_path):
        model = adam_model()
        optimizer = adam_optimizer(model)
        optimizer.load_state_dict(torch.load(path))
        train_step(model, optimizer, 3)
        results.append([p.detach().clone() for p in model.parameters()])
    same = all(torch.equal(a.view(torch.int32), b.view(torch.int32)) for a, b in zip(*results))
    return {"same": same, "parameters": len(results[0])}


def adam_load(path):
    """Load a state dict into Adam over the fixture model, step once and describe the new state."""
    model = adam_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.load_state_dict(torch.load(path))
    train_step(model, optimizer, 0)
    return {"value": Describer().describe(optimizer.state_dict())}


def main(arguments):
    torch.set_num_threads(1)
    command = arguments[0]
    if command == "describe":
        result = describe_file(arguments[1])
    elif command == "adam-step":
        result = adam_step(arguments[1], arguments[2])
    elif command == "adam-load":
        result = adam_load(arguments[1])
    else:
        raise SystemExit(f"unknown command {command!r}; expected describe, adam-step or adam-load")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
