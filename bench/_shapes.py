"""What the recurrent benchmarks measure: cells, shapes, modes, and their FLOP counts."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: ``gates`` is G in the weight shapes ``(G*H, I)`` and ``(G*H, H)``."""

    name: str
    gates: int
    has_cell_state: bool = False


CELLS = {
    "rnn": Cell("rnn", 1),
    "lstm": Cell("lstm", 4, has_cell_state=True),
    "gru": Cell("gru", 3),
}


@dataclass(frozen=True)
class Shape:
    """One problem size, time-major: ``x`` is ``(T, B, I)``, the hidden state ``(B, H)``."""

    name: str
    T: int
    B: int
    I: int
    H: int

    @property
    def label(self) -> str:
        return f"{self.name}(T{self.T},B{self.B},I{self.I},H{self.H})"


SHAPES = {
    s.name: s
    for s in (
        Shape("small", 100, 1, 8, 64),
        Shape("medium", 100, 32, 128, 128),
        Shape("char", 100, 64, 64, 256),
        Shape("large", 50, 64, 512, 512),
        Shape("xl", 25, 64, 1024, 1024),
    )
}

# Single-step generation latency (issue "Performance": <= 5 us per call for a B=1, H=256 LSTM
# with the state in and out from Python): T is the number of chained steps of the check; the
# input size is the char shape's.
STEP_SHAPE = Shape("step", 8, 1, 64, 256)
STEP_TARGET_US = 5.0

# The two shapes every change is judged on; the slow NumPy reference runs only on these.
CORE_SHAPES = ("medium", "large")

# Shapes of the quick run of compare.py.
QUICK_SHAPES = ("small", "medium")

# "inference": forward(training=False).
# "training": forward(training=True) followed by backward with a random dy.
MODES = ("inference", "training")


def flops(cell: Cell, shape: Shape, mode: str) -> int:
    """Multiply-adds counted as 2 FLOPs, GEMMs only (the gate math is not counted).

    Forward: ``2*T*B*(I+H)*G*H`` (input projection plus recurrence). A training step adds a
    backward of twice that (data gradients and weight gradients), 3x the forward in total.
    """
    forward = 2 * shape.T * shape.B * (shape.I + shape.H) * cell.gates * shape.H
    if mode == "inference":
        return forward
    if mode == "training":
        return 3 * forward
    raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
