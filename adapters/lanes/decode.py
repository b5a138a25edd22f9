"""UFLD logits -> TuSimple prediction records and the JSON-lines file, as UFLD's `evaluation/eval_wrapper.py` does it.

"rel" decoding per row and lane: present iff the argmax over all griding+1 classes is not the "no lane" class; the
x position is the softmax expectation over the griding location classes only, scaled by 1280/(griding-1) with a
half-cell offset. All 4 lanes are always written (absent ones as all -2) because that is what the published numbers
were scored with (UFLD's eval_wrapper); `run_time` is UFLD's constant 10 ms.

The arithmetic runs in numpy on float32 logits with scipy's softmax, the same operations as upstream, so rounding
ties resolve identically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.special
import torch

from adapters.lanes.constants import H_SAMPLES, IMG_W, RUN_TIME_MS

ABSENT_X = -2


def decode_lanes(logits: torch.Tensor | np.ndarray, img_w: int = IMG_W) -> list[list[int]]:
    """One image's logits (griding+1) x rows x lanes -> `lanes`: one list of `rows` ints per lane slot."""
    out = logits.detach().float().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, np.float32)
    if out.ndim != 3:
        raise ValueError(f"expected logits of shape (griding+1, rows, lanes), got {out.shape}")
    griding = out.shape[0] - 1
    present = np.argmax(out, axis=0) != griding
    prob = scipy.special.softmax(out[:-1], axis=0)
    loc = np.sum(prob * np.arange(griding).reshape(-1, 1, 1), axis=0)  # rows x lanes, in [0, griding-1]
    scale = float(img_w) / (griding - 1)
    return [
        [int(round((loc[j, i] + 0.5) * scale)) if present[j, i] else ABSENT_X for j in range(out.shape[1])]
        for i in range(out.shape[2])
    ]


def prediction_record(raw_file: str, lanes: list[list[int]]) -> dict:
    """The JSON object UFLD writes per test image (key order as upstream)."""
    return {"lanes": lanes, "h_samples": list(H_SAMPLES), "raw_file": raw_file, "run_time": RUN_TIME_MS}


def decode_batch(logits: torch.Tensor, names: Sequence[str]) -> list[dict]:
    """A batch of logits N x (griding+1) x rows x lanes and their raw_file names -> prediction records."""
    if isinstance(logits, (tuple, list)):  # an aux model's (logits, seg) output: only the logits are decoded
        logits = logits[0]
    if logits.shape[0] != len(names):
        raise ValueError(f"{logits.shape[0]} outputs but {len(names)} image names")
    cpu = logits.detach().float().cpu()
    return [prediction_record(str(name), decode_lanes(cpu[i])) for i, name in enumerate(names)]


def write_prediction_file(records: Iterable[dict], path: str | Path) -> Path:
    """Write records as JSON lines (one object per line, as the official evaluator reads them); atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    tmp.replace(path)
    return path
