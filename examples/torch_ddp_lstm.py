"""Data-parallel training of an rnnfast.torch LSTM with torch DistributedDataParallel.

A bidirectional two-layer ``rnnfast.torch.LSTM`` reads variable-length sequences (packed)
and a linear head classifies them. Two processes (gloo backend, CPU, one thread each) train it
with ``DistributedDataParallel``, each on its half of every global batch; DDP averages their
gradients, so both replicas end equal to one process trained on the whole batches. The script
runs both trainings and prints the largest difference of the final weights.

    python examples/torch_ddp_lstm.py                      # float32, 30 steps
    python examples/torch_ddp_lstm.py --quick              # 3 steps (a few seconds)
    python examples/torch_ddp_lstm.py --steps 5 --dtype float32 float64 --out weights/

``--out DIR`` keeps the weights (``init_<dtype>.pt``, ``single_<dtype>.pt`` and
``ddp_rank<r>_<dtype>.pt``, torch state_dicts). The exit status is 1 when DDP and the single
process disagree beyond float tolerance (1e-4 for float32, 1e-10 for float64, relative to
max(1, max |weight|)), or when the workers fail or run past ``--timeout`` seconds.
"""
import argparse
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch.nn.parallel import DistributedDataParallel
    from torch.nn.utils.rnn import pack_padded_sequence
except ImportError as error:
    sys.exit(f"{Path(__file__).name} needs PyTorch ({error}); install rnnfast's torch extra: "
             "pip install 'rnnfast[torch]'")

import rnnfast
import rnnfast.torch as rt
from _common import QUICK_ENV

WORLD_SIZE = 2
FEATURES, HIDDEN, CLASSES, MAX_LEN = 6, 16, 3, 12
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


class SequenceClassifier(torch.nn.Module):
    """Bidirectional 2-layer LSTM over packed sequences; the head reads the last layer's
    final states of both directions."""

    def __init__(self, dtype):
        super().__init__()
        self.lstm = rt.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=True,
                            bidirectional=True, dtype=dtype)
        self.head = torch.nn.Linear(2 * HIDDEN, CLASSES, dtype=dtype)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))


def make_model(dtype, seed):
    torch.manual_seed(seed)
    return SequenceClassifier(dtype)


def global_batch(step, batch_size, dtype, seed):
    """Batch ``step`` of a synthetic task: the class is which third of the features has the
    largest sum over the sequence's valid steps. Returns (x (B, T, F), lengths, labels)."""
    rng = np.random.default_rng([seed, step])
    lengths = rng.integers(2, MAX_LEN + 1, size=batch_size)
    x = rng.standard_normal((batch_size, MAX_LEN, FEATURES))
    x[np.arange(MAX_LEN)[None, :] >= lengths[:, None]] = 0.0
    sums = x.sum(axis=1).reshape(batch_size, CLASSES, -1).sum(axis=2)
    labels = sums.argmax(axis=1)
    return (torch.from_numpy(x).to(dtype), torch.from_numpy(lengths),
            torch.from_numpy(labels))


def train(model, config, dtype, rank=0, world_size=1):
    """SGD with momentum; this process takes its 1/world_size share of every global batch."""
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    share = config["batch"] // world_size
    losses = []
    for step in range(config["steps"]):
        x, lengths, labels = global_batch(step, config["batch"], dtype, config["seed"])
        part = slice(rank * share, (rank + 1) * share)
        loss = torch.nn.functional.cross_entropy(model(x[part], lengths[part]), labels[part])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def train_replica(rank, world_size, config, name, out_dir):
    """Trains one DDP replica in dtype ``name`` and saves its final weights. The replica (which
    holds the process group) is freed on return, before the group is destroyed."""
    dtype = getattr(torch, name)
    model = make_model(dtype, config["seed"])
    losses = train(DistributedDataParallel(model), config, dtype, rank, world_size)
    torch.save(model.state_dict(), Path(out_dir) / f"ddp_rank{rank}_{name}.pt")
    if rank == 0:
        print(f"ddp    {name}: loss of rank 0's half {losses[0]:.4f} -> {losses[-1]:.4f}",
              flush=True)


def worker(rank, world_size, port, config, out_dir):
    """One DDP process: trains every requested dtype and saves its final weights."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    rnnfast.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=config["timeout"]))
    try:
        for name in config["dtypes"]:
            train_replica(rank, world_size, config, name, out_dir)
        # Both ranks are done with the group before either tears it down.
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # torch 2.13 keeps the gloo threads running after destroy_process_group (with torch.nn.LSTM
    # as well), and an interpreter exit beside them once aborted a worker ("terminate called
    # without an active exception"). The worker is done and its files are written: it leaves
    # without tearing the interpreter down.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(config, out_dir):
    """Spawns the workers and waits for them, killing them after config["timeout"] seconds."""
    context = mp.start_processes(worker, args=(WORLD_SIZE, free_port(), config, out_dir),
                                 nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + config["timeout"]
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"the DDP workers ran past {config['timeout']} s")


def rel_diff(a, b):
    return (a.double() - b.double()).abs().max().item() / max(1.0, b.double().abs().max().item())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="global batch (even)")
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=sorted(TOLERANCE))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the workers")
    parser.add_argument("--out", type=Path, default=None, help="directory for the weights")
    parser.add_argument("--quick", action="store_true",
                        help=f"3 steps, a few seconds (also {QUICK_ENV}=1)")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get(QUICK_ENV) == "1":
        args.steps = min(args.steps, 3)
    if args.batch % WORLD_SIZE:
        parser.error(f"--batch must be a multiple of {WORLD_SIZE}, got {args.batch}")
    config = dict(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                  dtypes=args.dtype, timeout=args.timeout)
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = args.out or Path(scratch)
        out_dir.mkdir(parents=True, exist_ok=True)
        run_ddp(config, out_dir)
        agree = True
        for name in args.dtype:
            dtype = getattr(torch, name)
            model = make_model(dtype, args.seed)
            torch.save(model.state_dict(), out_dir / f"init_{name}.pt")
            losses = train(model, config, dtype)
            print(f"single {name}: loss of the whole batch {losses[0]:.4f} -> {losses[-1]:.4f}")
            single = model.state_dict()
            torch.save(single, out_dir / f"single_{name}.pt")
            ranks = [torch.load(out_dir / f"ddp_rank{r}_{name}.pt") for r in range(WORLD_SIZE)]
            vs_single = max(rel_diff(ranks[0][k], v) for k, v in single.items())
            vs_rank = max(rel_diff(ranks[1][k], v) for k, v in ranks[0].items())
            ok = vs_single < TOLERANCE[name] and vs_rank < TOLERANCE[name]
            agree &= ok
            print(f"{name}: max relative weight difference DDP vs single process {vs_single:.2e}, "
                  f"rank 1 vs rank 0 {vs_rank:.2e} ({'ok' if ok else 'MISMATCH'})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
