"""Memory the recurrent kernels keep: inference does not hold the input projection of every
step once it exceeds 32 MiB (its temporary is then a window of steps, whatever T is); training keeps (G + 2) * T * B * H
values per layer (DESIGN.md performance design, issue "Performance").

Each case runs in a fresh interpreter and reports the growth of its peak RSS over one call
(ru_maxrss after minus before, the inputs already allocated), so other tests cannot skew it.
"""
import json
import subprocess
import sys

import pytest

from subprocess_env import PACKAGE_PARENT, python_env

T, B, I, H = 6000, 8, 8, 256
WINDOW = 32 * (1 << 20)  # the bytes of input projection inference may hold
MIB = 1 << 20

SCRIPT = """
import json, resource, sys
import numpy as np
import rnnfast
from rnnfast import functional as F
op, training = sys.argv[1], sys.argv[2] == "1"
T, B, I, H = map(int, sys.argv[3:7])
G = dict(rnn=1, lstm=4, gru=3)[op]
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I)).astype(np.float32)
w_ih = (rng.standard_normal((G * H, I)) * 0.1).astype(np.float32)
w_hh = (rng.standard_normal((G * H, H)) * 0.05).astype(np.float32)
small = getattr(F, op + "_forward")(x[:2], w_ih, w_hh)  # load the kernels, start the pool
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = getattr(F, op + "_forward")(x, w_ih, w_hh, training=training)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(growth_kib=after - before, y_bytes=out[0].nbytes)))
"""


def peak_growth(op, training, shape=(T, B, I, H)):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, op, "1" if training else "0",
                           *map(str, shape)],
                          capture_output=True, text=True, timeout=300, cwd=PACKAGE_PARENT,
                          env=python_env(RNNFAST_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["growth_kib"] * 1024, result["y_bytes"]


@pytest.mark.parametrize("op,G", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_inference_keeps_no_projection_of_every_step(op, G):
    growth, y_bytes = peak_growth(op, training=False)
    rows = T * B
    projection = rows * G * H * 4  # what projecting every step at once would hold
    # y itself (the result), one window, and a few MiB of packed weights and pool stacks; below
    # y + the whole projection (48 MiB for the RNN, 192 MiB for the LSTM).
    assert projection > WINDOW + 8 * MIB
    assert growth < y_bytes + WINDOW + 8 * MIB, (growth / MIB, y_bytes / MIB)


@pytest.mark.parametrize("op,G", [("lstm", 4), ("gru", 3)])
def test_training_keeps_at_most_g_plus_2_rows_per_value(op, G):
    growth, y_bytes = peak_growth(op, training=True)
    rows = T * B
    # gates [rows, G*H], h_prev and c_prev / W_hn h [rows, H], and y.
    budget = (G + 2) * rows * H * 4 + y_bytes
    assert growth < budget + 8 * MIB, (growth / MIB, budget / MIB)


# T = 100,000 steps (test_long_sequences.py checks their results): the same bounds.
LONG = (100_000, 1, 4, 32)


@pytest.mark.parametrize("op,G", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_long_sequence_inference_memory(op, G):
    T_, B_, _, H_ = LONG
    growth, y_bytes = peak_growth(op, training=False, shape=LONG)
    # y, at most one window of the input projection (the whole one when smaller), a few MiB.
    assert growth < y_bytes + min(WINDOW, G * T_ * B_ * H_ * 4) + 8 * MIB, (growth / MIB)


@pytest.mark.parametrize("op,G", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_long_sequence_training_memory(op, G):
    T_, B_, _, H_ = LONG
    growth, y_bytes = peak_growth(op, training=True, shape=LONG)
    budget = (G + 2) * T_ * B_ * H_ * 4 + y_bytes
    assert growth < budget + 8 * MIB, (growth / MIB, budget / MIB)
