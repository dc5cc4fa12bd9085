"""CPU time of the convolution work, in-process, for decisions on a busy machine.

``shapes``: ``_C.conv1d_forward`` / ``conv1d_backward`` (channels last) against
``torch.nn.functional.conv1d`` (its own layout; the backward is forward + autograd minus the
forward) on the IMDB example's convolution and the WaveNet example's (T = 16,000, batch 1),
and ``_C.gemm`` of the forward's product shape (M = B * L_out, K = C_in * kernel, N = C_out) as
the GEMM rate to reach. ``wavenet``: one training epoch of the WaveNet example's model (its
``fit``) against its PyTorch twin (``epochs_vs_torch``'s loop), alternating, CPU seconds per
sequence. Minimum over ``--rounds`` of thread CPU time (``time.thread_time``; ``process_time``
for the epochs), one thread each by default: load slows both sides alike and CPU time leaves
out the time waiting for a core. ``products``: the GEMMs the IMDB convolution's training pass runs
(forward; weight gradient in one product over the whole batch, as the kernel does, and summed per
sequence, as it did before; input gradient over the patches of the zero-padded dy in one product,
as the kernel does, per sequence, as it did before, and as one product of width kernel * C_in
followed by a scatter (the form measured and not adopted)), each by ``_C.gemm`` and by
``torch.matmul`` of the same M, N, K, with GFLOP/s (the kernel's own products read the
patches in place, the weight gradient's over depth B * L - (K - 1) with zero rows of dy between
the sequences; here over packed copies).

    python bench/conv_cpu_time.py shapes --rounds 7
    python bench/conv_cpu_time.py products --rounds 7
    python bench/conv_cpu_time.py wavenet --sequences 4 --rounds 2
    python bench/conv_cpu_time.py pooled --rounds 15 --threads 2

``pooled``: the IMDB convolution (ReLU) and its MaxPooling1D(4), differentiated from the pool's
output gradient as two calls (``max_pool1d_backward`` then the dense ``conv1d_backward``) and as
one (``conv1d_backward(..., pool=)``: the windows' winners only), alternating, process CPU ms
(both threads of the pool when ``--threads 2``), after checking that the two agree.

``pooled-forward``: the same convolution and pool forward (``training=True``) as two calls and as
``conv1d_max_pool1d_forward``'s one (the convolution's output never stored), checked bitwise,
alternating, min wall and process CPU ms of each.

    python bench/conv_cpu_time.py pooled-forward --rounds 200 --threads 2

``functional``: the IMDB example's model built as a functional ``Model`` (the same layers and
seeds), epochs of its ``fit`` alternating the Conv1D -> MaxPooling1D backward in one call and as
two (``_fuse_conv_pool``), min process CPU seconds per epoch of each, after checking that one
batch's gradients agree.

    python bench/conv_cpu_time.py functional --rounds 5 --threads 2

``embedding``: the IMDB example's model (a Sequential), epochs of its ``fit`` alternating the
Embedding -> Dropout forward and backward as one pass each and as the two layers' calls
(``_fuse_embedding_dropout``), two models in one process, min process CPU seconds per epoch of
each and the minor page faults each epoch took (``getrusage``: the heap's pages given back and
faulted in again), after checking that the two give the same losses.

    python bench/conv_cpu_time.py embedding --rounds 5 --threads 2

``memory``: the IMDB example's model trained in child processes, alternating with and without
the training loops' NumPy memory handler (``rnnfast.models.training.array_memory``; "without":
NumPy's own allocator, as before it), ``--epochs`` calls of ``fit(epochs=1)`` each (one scope per
epoch, as ``epochs_vs_keras.py`` calls it), after one warm-up epoch: per epoch, process CPU
seconds and minor page faults (``getrusage``). Separate processes, since whether the C library's
heap hands the freed blocks back to the system depends on the process's allocation history.

    python bench/conv_cpu_time.py memory --rounds 4 --epochs 3 --threads 2
    KERAS_BACKEND=torch python bench/conv_cpu_time.py memory --rounds 4 --keras 1000

``--keras N``: before each epoch, an epoch of the Keras twin (``epochs_vs_keras.py``'s) on the
first N samples, whose allocations change the C library's heap between the rnnfast epochs as in
that benchmark (needs keras).

``algorithms``: the IMDB convolution's forward (ReLU) by ``algorithm="direct"`` (the GEMM over
the patches) and ``"winograd"`` (Winograd's minimal filtering; what ``"auto"`` picks for it),
alternating round after round, minimum wall and process CPU ms of each (process CPU: both
threads of the pool when ``--threads 2``), after checking that the two agree within 1e-4.

    python bench/conv_cpu_time.py algorithms --rounds 40 --threads 2

Needs torch.
"""
import argparse
import sys
import time

import numpy as np

import _env

_env.use_inplace_build()
sys.path.insert(0, str(_env.REPO_ROOT / "examples"))

import torch  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast import _C  # noqa: E402

# name, B, T, C_in, C_out, kernel, dilation, padding
SHAPES = [
    ("imdb", 100, 100, 100, 64, 5, 1, "valid"),
    ("wavenet input", 1, 16000, 1, 32, 2, 1, "causal"),
    ("wavenet dilated 1", 1, 16000, 32, 64, 2, 1, "causal"),
    ("wavenet dilated 16", 1, 16000, 32, 64, 2, 16, "causal"),
    ("wavenet dilated 512", 1, 16000, 32, 64, 2, 512, "causal"),
    ("wavenet residual", 1, 16000, 32, 32, 1, 1, "valid"),
    ("wavenet skip", 1, 16000, 32, 64, 1, 1, "valid"),
    ("wavenet end1", 1, 16000, 64, 64, 1, 1, "valid"),
    ("wavenet end2", 1, 16000, 64, 256, 1, 1, "valid"),
]


def cpu_ms(fn):
    start = time.thread_time()
    fn()
    return (time.thread_time() - start) * 1e3


def shapes(rounds):
    rng = np.random.default_rng(0)
    print("| shape | GFLOP | rnnfast fwd ms | torch fwd ms | GEMM ms | rnnfast bwd ms | "
          "torch bwd ms | fwd torch/rnnfast | bwd torch/rnnfast |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, B, T, ci, co, K, d, pad in SHAPES:
        x = rng.standard_normal((B, T, ci)).astype(np.float32)
        w = (rng.standard_normal((co, ci, K)) * 0.1).astype(np.float32)
        b = rng.standard_normal(co).astype(np.float32)
        kw = dict(stride=1, padding=pad, dilation=d, groups=1, channels_last=True)
        y, ctx = _C.conv1d_forward(x, w, b, training=True, **kw)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        lo = y.shape[1]
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).requires_grad_(True)
        wt, bt = torch.from_numpy(w).requires_grad_(True), torch.from_numpy(b).requires_grad_(True)
        dyt = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 2, 1)))
        left = d * (K - 1) if pad == "causal" else 0

        def torch_forward():
            xp = torch.nn.functional.pad(xt, (left, 0)) if left else xt
            return torch.nn.functional.conv1d(xp, wt, bt, dilation=d)

        def torch_no_grad():
            with torch.no_grad():
                torch_forward()

        def torch_train():
            torch.autograd.grad(torch_forward(), (xt, wt, bt), dyt)

        a = rng.standard_normal((B * lo, ci * K)).astype(np.float32)
        m = rng.standard_normal((ci * K, co)).astype(np.float32)
        runs = {k: [] for k in ("rf", "tf", "g", "rb", "tt")}
        for _ in range(rounds):
            runs["rf"].append(cpu_ms(lambda: _C.conv1d_forward(x, w, b, training=False, **kw)))
            runs["tf"].append(cpu_ms(torch_no_grad))
            runs["g"].append(cpu_ms(lambda: _C.gemm(a, m)))
            runs["rb"].append(cpu_ms(lambda: _C.conv1d_backward(ctx, dy)))
            runs["tt"].append(cpu_ms(torch_train))
        t = {k: min(v) for k, v in runs.items()}
        tb = t["tt"] - t["tf"]
        gflop = 2 * B * lo * ci * K * co / 1e9
        print(f"| {name} | {gflop:.3f} | {t['rf']:.3f} | {t['tf']:.3f} | {t['g']:.3f} | "
              f"{t['rb']:.3f} | {tb:.3f} | {t['tf'] / t['rf']:.2f} | {tb / t['rb']:.2f} |")


def products(rounds, shape=("imdb", 100, 100, 100, 64, 5)):
    """The IMDB convolution's products (valid padding, stride 1), _C.gemm against torch.matmul."""
    _, B, T, ci, co, K = shape
    lo = T - K + 1
    rng = np.random.default_rng(0)

    def rand(*s):
        return rng.standard_normal(s).astype(np.float32)

    P, dy, w = rand(B * lo, K * ci), rand(B * lo, co), rand(K * ci, co)
    Pd, wt = rand(B * T, K * co), rand(K * co, ci)     # dx: patches of the padded dy
    w3 = rand(co, K * ci)                              # dx as one product, then a scatter
    seq = [slice(b * lo, (b + 1) * lo) for b in range(B)]
    seq_in = [slice(b * T, (b + 1) * T) for b in range(B)]
    t = {name: torch.from_numpy(a) for name, a in
         dict(P=P, dy=dy, w=w, Pd=Pd, wt=wt, w3=w3).items()}

    def dw_per_sequence():
        acc = np.zeros((K * ci, co), np.float32)
        for s in seq:
            acc = _C.gemm(P[s], dy[s], trans_a=True, beta=1.0, c=acc)

    def dx_per_sequence():
        for s in seq_in:
            _C.gemm(Pd[s], wt)

    cases = [  # name, M, N, K, rnnfast, torch
        ("forward", B * lo, co, K * ci, lambda: _C.gemm(P, w),
         lambda: torch.matmul(t["P"], t["w"])),
        ("dw per sequence (before)", K * ci, co, B * lo, dw_per_sequence,
         lambda: torch.matmul(t["P"].T, t["dy"])),
        ("dw one product (kernel)", K * ci, co, B * lo, lambda: _C.gemm(P, dy, trans_a=True),
         lambda: torch.matmul(t["P"].T, t["dy"])),
        ("dx per sequence (before)", B * T, ci, K * co, dx_per_sequence,
         lambda: torch.matmul(t["Pd"], t["wt"])),
        ("dx one product (kernel)", B * T, ci, K * co, lambda: _C.gemm(Pd, wt),
         lambda: torch.matmul(t["Pd"], t["wt"])),
        ("dx scatter form, product", B * lo, K * ci, co, lambda: _C.gemm(dy, w3),
         lambda: torch.matmul(t["dy"], t["w3"])),
    ]
    runs = {name: ([], []) for name, *_ in cases}
    for _ in range(rounds):
        for name, M, N, Kd, ours, theirs in cases:
            runs[name][0].append(cpu_ms(ours))
            runs[name][1].append(cpu_ms(theirs))
    print("| product | M | N | K | rnnfast ms | GFLOP/s | torch.matmul ms | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, M, N, Kd, *_ in cases:
        a, b = min(runs[name][0]), min(runs[name][1])
        gflop = 2 * M * N * Kd / 1e6  # per ms

        def rate(ms):
            return f"{gflop / ms:.1f}" if ms > 0 else "-"
        print(f"| {name} | {M} | {N} | {Kd} | {a:.3f} | {rate(a)} | {b:.3f} | {rate(b)} |")
    return runs


def wavenet(sequences, rounds):
    import epochs_vs_torch as evt
    import wavenet as example

    case = evt.WaveNetCase(example, False, 0)
    x, y = case.x[:sequences], case.y[:sequences]
    opt = evt.torch_optimizer(case.model, case.twin)
    xt, yt = case.tensors(x, y)
    order = np.arange(sequences)
    case.model.fit(x[:1], y[:1], batch_size=1, epochs=1, verbose=0)        # warm both up
    evt.torch_epoch(case, case.twin, opt, xt[:1], yt[:1], None, np.arange(1))
    ours, theirs = [], []
    for _ in range(rounds):
        start = time.process_time()
        case.model.fit(x, y, batch_size=1, epochs=1, verbose=0)
        ours.append((time.process_time() - start) / sequences)
        start = time.process_time()
        evt.torch_epoch(case, case.twin, opt, xt, yt, None, order)
        theirs.append((time.process_time() - start) / sequences)
    print(f"WaveNet epoch, CPU s per sequence of {x.shape[1]} steps (min of {rounds}): "
          f"rnnfast {min(ours):.4f}, PyTorch {min(theirs):.4f}, "
          f"PyTorch / rnnfast {min(theirs) / min(ours):.2f}")


def pooled(rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 100, 100)).astype(np.float32)
    w = (rng.standard_normal((64, 100, 5)) * 0.1).astype(np.float32)
    b = np.zeros(64, np.float32)
    y, ctx = _C.conv1d_forward(x, w, b, stride=1, padding="valid", dilation=1, groups=1,
                               channels_last=True, training=True, precision="float32",
                               add=None, activation="relu")
    py, pctx = _C.pool1d_forward("max_pool1d", y, pool_size=4, stride=None, padding="valid",
                                 channels_last=True, training=True)
    dpy = rng.standard_normal(py.shape).astype(np.float32)

    def dense():
        return _C.conv1d_backward(ctx, _C.pool1d_backward("max_pool1d", pctx, dpy)["x"])

    def one_call():
        return _C.conv1d_backward(ctx, dpy, pool=pctx)

    a, c = dense(), one_call()
    for name in ("x", "w", "b"):
        err = np.abs(a[name] - c[name]).max() / max(1.0, np.abs(a[name]).max())
        assert err < 1e-4, (name, err)
    times = {"dense": [], "pooled": []}
    for _ in range(rounds):
        for name, fn in (("dense", dense), ("pooled", one_call)):
            start = time.process_time()
            fn()
            times[name].append((time.process_time() - start) * 1e3)
    print("| backward | min process CPU ms |\n|---|---:|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.2f} |")
    return {name: min(ts) for name, ts in times.items()}


def algorithms(rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 100, 100)).astype(np.float32)
    w = (rng.standard_normal((64, 100, 5)) * 0.1).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)

    def forward(algorithm):
        return _C.conv1d_forward(x, w, b, stride=1, padding="valid", dilation=1, groups=1,
                                 channels_last=True, training=False, precision="float32",
                                 add=None, activation="relu", algorithm=algorithm)[0]

    ys = {name: forward(name) for name in ("direct", "winograd")}
    err = np.abs(ys["direct"] - ys["winograd"]).max() / max(1.0, np.abs(ys["direct"]).max())
    assert err < 1e-4, err
    wall = {name: [] for name in ys}
    cpu = {name: [] for name in ys}
    for _ in range(rounds):
        for name in ys:
            start, start_cpu = time.perf_counter(), time.process_time()
            forward(name)
            wall[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
    print("| IMDB conv forward | min wall ms | min process CPU ms |\n|---|---:|---:|")
    for name in ys:
        print(f"| {name} | {min(wall[name]):.3f} | {min(cpu[name]):.3f} |")
    return {name: (min(wall[name]), min(cpu[name])) for name in ys}


def pooled_forward(rounds):
    """The IMDB convolution (ReLU) and its MaxPooling1D(4) forward with training=True as two
    calls (``conv1d_forward``, ``pool1d_forward``) and as one (``conv1d_max_pool1d_forward``,
    which never stores the convolution's output), checked bitwise first, alternating; min wall
    and min process CPU ms of each."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 100, 100)).astype(np.float32)
    w = (rng.standard_normal((64, 100, 5)) * 0.1).astype(np.float32)
    b = (rng.standard_normal(64) * 0.1).astype(np.float32)
    kw = dict(stride=1, padding="valid", dilation=1, groups=1, channels_last=True,
              training=True, precision="float32", activation="relu")

    def two_calls():
        y = _C.conv1d_forward(x, w, b, add=None, **kw)[0]
        return _C.pool1d_forward("max_pool1d", y, pool_size=4, stride=None, padding="valid",
                                 channels_last=True, training=True)

    def one_call():
        return _C.conv1d_max_pool1d_forward(x, w, b, pool_size=4, pool_stride=None,
                                            pool_padding="valid", **kw)

    assert two_calls()[0].tobytes() == one_call()[0].tobytes()
    times = {"two calls": [], "one call": []}
    for _ in range(rounds):
        for name, fn in (("two calls", two_calls), ("one call", one_call)):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(((time.perf_counter() - wall) * 1e3,
                                (time.process_time() - cpu) * 1e3))
    print("| conv -> pool forward | min wall ms | min process CPU ms |\n|---|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {min(t for t, _ in ts):.3f} | {min(c for _, c in ts):.3f} |")
    return {name: (min(t for t, _ in ts), min(c for _, c in ts)) for name, ts in times.items()}


def functional_imdb(seed=0):
    """The IMDB example's model (``imdb_sentiment.build_model``) as a functional Model, compiled
    the same way."""
    import imdb_sentiment as ex
    from rnnfast.models import Input, Model
    from rnnfast.models import layers as L

    inp = Input((ex.MAXLEN,), dtype="int32")
    h = L.Embedding(ex.NUM_WORDS, 100, seed=seed)(inp)
    h = L.Dropout(0.5, seed=seed + 1)(h)
    h = L.Conv1D(64, 5, padding="valid", activation="relu", strides=1, seed=seed + 2)(h)
    h = L.LSTM(55, seed=seed + 3)(L.MaxPooling1D(pool_size=4)(h))
    out = L.Activation("sigmoid")(L.Dense(1, seed=seed + 4)(h))
    model = Model(inp, out, seed=seed)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def functional(rounds, samples=8000):
    import imdb_sentiment as ex

    (x, y), _, _ = ex.load_data(samples=samples)
    model = functional_imdb()
    grads = {}
    for fuse in (True, False):  # one batch's gradients, from the same weights and dropout seed
        model._fuse_conv_pool = fuse
        model.train()
        model.layers[1].rng = np.random.default_rng(1)
        for p in model.parameters():
            p.grad = None
        out = model.forward(x[:100])
        model.backward(np.ones_like(out))
        grads[fuse] = {name: p.grad.copy() for name, p in model.named_parameters()}
    for name, g in grads[False].items():
        err = np.abs(grads[True][name] - g).max() / max(1.0, np.abs(g).max())
        assert err < 1e-4, (name, err)

    def epoch():
        model.fit(x, y, batch_size=100, epochs=1, verbose=0)

    epoch()  # warm-up
    times = {True: [], False: []}
    try:
        for _ in range(rounds):
            for fuse in (True, False):
                model._fuse_conv_pool = fuse
                start = time.process_time()
                epoch()
                times[fuse].append(time.process_time() - start)
    finally:
        model._fuse_conv_pool = True
    print(f"functional IMDB model, {len(x)} samples, batch 100\n"
          "| conv -> pool backward | min process CPU s/epoch |\n|---|---:|")
    names = {True: "one call (winners only)", False: "two calls (dense)"}
    for fuse, ts in times.items():
        print(f"| {names[fuse]} | {min(ts):.3f} |")
    return {names[fuse]: min(ts) for fuse, ts in times.items()}


def embedding(rounds, samples=8000):
    import resource

    import imdb_sentiment as ex

    (x, y), _, _ = ex.load_data(samples=samples)
    models = {fuse: ex.build_model() for fuse in (True, False)}
    losses = {}
    for fuse, model in models.items():
        model._fuse_embedding_dropout = fuse
        losses[fuse] = model.fit(x, y, batch_size=100, epochs=1, verbose=0)["loss"]  # warm-up
    assert losses[True] == losses[False], losses
    runs = {True: [], False: []}
    for _ in range(rounds):
        for fuse, model in models.items():
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.process_time()
            model.fit(x, y, batch_size=100, epochs=1, verbose=0)
            runs[fuse].append((time.process_time() - start,
                               resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    print(f"IMDB model, {len(x)} samples, batch 100\n| Embedding -> Dropout | "
          "min process CPU s/epoch | page faults per epoch |\n|---|---:|---|")
    names = {True: "one pass each way", False: "two layers"}
    for fuse, rs in runs.items():
        faults = " ".join(str(f) for _, f in rs)
        print(f"| {names[fuse]} | {min(c for c, _ in rs):.3f} | {faults} |")
    return {names[fuse]: min(c for c, _ in rs) for fuse, rs in runs.items()}


def memory_child(epochs, use_handler, keras_samples):
    import contextlib
    import json
    import resource

    import imdb_sentiment as ex
    from rnnfast.models import training

    if not use_handler:
        training.array_memory = contextlib.nullcontext
    (x, y), _, _ = ex.load_data(samples=8000)
    model = ex.build_model()
    twin = None
    if keras_samples:
        import epochs_vs_keras
        from epochs_vs_torch import IMDB

        case = IMDB(ex, False, 0)
        case.model = model
        twin = epochs_vs_keras.keras_twin(case)
    model.fit(x, y, batch_size=100, epochs=1, verbose=0)  # warm-up
    out = []
    for _ in range(epochs):
        if twin is not None:  # the Keras twin's allocations between the epochs, as in the bench
            twin.fit(x[:keras_samples], y[:keras_samples], batch_size=100, epochs=1, verbose=0)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.process_time()
        model.fit(x, y, batch_size=100, epochs=1, verbose=0)
        out.append((time.process_time() - start,
                    resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    print(json.dumps(out))


def memory(rounds, epochs, threads, keras_samples):
    import json
    import subprocess

    runs = {True: [], False: []}
    for _ in range(rounds):
        for use in (True, False):
            cmd = [sys.executable, __file__, "memory-child", "--epochs", str(epochs),
                   "--threads", str(threads), "--keras", str(keras_samples)] + \
                ([] if use else ["--no-handler"])
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[use].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"IMDB model, 6400 samples, batch 100, {threads} thread(s), {rounds} processes each "
          f"(alternating), {epochs} fit(epochs=1) calls after a warm-up"
          + (f", each after a Keras twin's epoch on {keras_samples} samples" if keras_samples
             else "") + "\n"
          "| NumPy memory | min CPU s/epoch | median CPU s/epoch | page faults per epoch, "
          "each process |\n|---|---:|---:|---|")
    names = {True: "training loops' handler", False: "NumPy's allocator"}
    for use, procs in runs.items():
        cpu = sorted(c for proc in procs for c, _ in proc)
        faults = " / ".join(" ".join(str(f) for _, f in proc) for proc in procs)
        print(f"| {names[use]} | {cpu[0]:.3f} | {cpu[len(cpu) // 2]:.3f} | {faults} |")
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["shapes", "products", "wavenet", "pooled",
                                         "pooled-forward", "functional", "embedding", "memory",
                                         "memory-child", "algorithms"])
    parser.add_argument("--epochs", type=int, default=3, help="memory: epochs per process")
    parser.add_argument("--keras", type=int, default=0,
                        help="memory: a Keras twin's epoch on this many samples before each "
                             "(KERAS_BACKEND=torch)")
    parser.add_argument("--no-handler", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sequences", type=int, default=4, help="wavenet: sequences per epoch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    if args.what == "memory-child":
        return memory_child(args.epochs, not args.no_handler, args.keras)
    print(f"threads {args.threads}, isa {rnnfast.active_isa()}")
    if args.what == "shapes":
        shapes(args.rounds)
    elif args.what == "products":
        products(args.rounds)
    elif args.what == "pooled":
        pooled(args.rounds)
    elif args.what == "algorithms":
        algorithms(args.rounds)
    elif args.what == "pooled-forward":
        pooled_forward(args.rounds)
    elif args.what == "functional":
        functional(args.rounds)
    elif args.what == "embedding":
        embedding(args.rounds)
    elif args.what == "memory":
        memory(args.rounds, args.epochs, args.threads, args.keras)
    else:
        wavenet(args.sequences, args.rounds)


if __name__ == "__main__":
    main()
