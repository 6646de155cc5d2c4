"""Load a checkpoint of `client train` into PyTorch 1.13 and keep training there.

Usage: continue_training.py MODEL.pt OPTIMIZER.pt CLASS DIGITS.csv.gz HIDDEN STEPS

Builds nn.Sequential(Linear(64, HIDDEN), ReLU(), Linear(HIDDEN, 10)), loads MODEL.pt strictly, builds
torch.optim.CLASS over the model's parameters, loads OPTIMIZER.pt into it, then trains STEPS full-batch steps on
the whole data set. Prints one JSON line: loss and accuracy before and after, and the step count of the state.
"""
import gzip
import json
import sys

import torch

if len(sys.argv) != 7:
    sys.exit(__doc__)

torch.set_num_threads(1)
model_path, optimizer_path, class_name, data_path = sys.argv[1:5]
hidden, steps = int(sys.argv[5]), int(sys.argv[6])

with gzip.open(data_path, "rt") as data_file:
    rows = [list(map(int, line.split(","))) for line in data_file if line.strip()]
inputs = torch.tensor([row[:64] for row in rows], dtype=torch.float32) / 16.0
labels = torch.tensor([row[64] for row in rows])

model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
model.load_state_dict(torch.load(model_path), strict=True)

optimizer = getattr(torch.optim, class_name)(model.parameters(), lr=0.001)
optimizer.load_state_dict(torch.load(optimizer_path))


def evaluate():
    with torch.no_grad():
        logits = model(inputs)
        return torch.nn.functional.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


loss_before, accuracy_before = evaluate()
for _ in range(steps):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(inputs), labels).backward()
    optimizer.step()
loss_after, accuracy_after = evaluate()

print(json.dumps({
    "optimizer": type(optimizer).__name__,
    "lr": optimizer.param_groups[0]["lr"],
    "loss_before": loss_before,
    "accuracy_before": accuracy_before,
    "loss_after": loss_after,
    "accuracy_after": accuracy_after,
    "step": float(next(iter(optimizer.state.values())).get("step", torch.tensor(-1.0))),
}))
