"""WaveNet: the gated activation, forward and backward against a PyTorch twin (same weights,
float64 to 1e-10), causality and receptive field, fast generation against the full forward and
against recomputing the receptive field, memory linear in T."""
import pathlib
import sys
import tracemalloc

import numpy as np
import pytest

from rnnfast import nn


def torch_twin(torch, model):
    """The same network in PyTorch with the model's weights (the benchmark's twin)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
    try:
        from wavenet_vs_torch import TorchWaveNet
    finally:
        sys.path.pop(0)
    return TorchWaveNet(model)


def small(dtype=np.float64, K=2, dilations=(1, 2, 4, 8, 1, 2, 4), seed=0, **kw):
    args = dict(in_channels=2, out_channels=11, residual_channels=6, dilation_channels=5,
                skip_channels=7, end_channels=9)
    args.update(kw)
    return nn.WaveNet(dilations=list(dilations), kernel_size=K, dtype=dtype, seed=seed, **args)


def test_gated_activation_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 10)) * 3
    gate = nn.GatedActivation()
    z = gate(x)
    dz = rng.standard_normal(z.shape)
    dx = gate.backward(dz)
    tx = torch.tensor(x, requires_grad=True)
    tz = torch.tanh(tx[..., :5]) * torch.sigmoid(tx[..., 5:])
    (tz * torch.tensor(dz)).sum().backward()
    np.testing.assert_allclose(z, tz.detach().numpy(), atol=1e-14, rtol=0)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="even"):
        gate(np.ones((2, 3)))
    assert np.all(np.isfinite(gate(np.array([[1e30, -1e30, 1e30, -1e30]]))))


@pytest.mark.parametrize("shape", [(1, 1, 2), (2, 17, 34), (3, 5, 38), (1, 300, 66)])
def test_gated_activation_float32_against_float64(shape, rng):
    """The float32 kernel (its own tanh and sigmoid) against the float64 math: odd channel
    counts (not a multiple of the SIMD width), B = 1, T = 1, saturating inputs."""
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x.flat[::7] = 60.0
    x.flat[3::11] = -1e30
    gate = nn.GatedActivation()
    z = gate(x)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    dx = gate.backward(dz)
    assert z.dtype == dx.dtype == np.float32 and dx.shape == x.shape
    x64, C = x.astype(np.float64), shape[-1] // 2
    f = np.tanh(x64[..., :C])
    g = 0.5 * (1 + np.tanh(0.5 * x64[..., C:]))
    np.testing.assert_allclose(z, f * g, atol=3e-7, rtol=0)
    want = np.concatenate([dz * g * (1 - f * f), dz * f * g * (1 - g)], axis=-1)
    np.testing.assert_allclose(dx, want, atol=1e-6 * max(1.0, np.abs(dz).max()), rtol=0)


@pytest.mark.parametrize("K", [1, 2, 3])
def test_forward_and_backward_match_pytorch_twin(K, rng):
    torch = pytest.importorskip("torch")
    model = small(K=K)
    for p in model.parameters():                 # no zero biases: exercise every mapping
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    twin = torch_twin(torch, model)
    x = rng.standard_normal((3, 37, 2))
    y = model(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = twin(tx)
    (ty * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10, rtol=0)
    theirs = dict(twin.named_parameters())
    assert set(theirs) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        # the last block's residual output feeds nothing: torch leaves its grad None, ours 0
        want = theirs[name].grad
        want = np.zeros(p.shape) if want is None else want.numpy()
        np.testing.assert_allclose(p.grad, want, atol=1e-10, rtol=0, err_msg=name)


def test_causality_and_receptive_field(rng):
    model = small(K=2, dilations=(1, 2, 4, 1, 2))
    rf = model.receptive_field
    assert rf == 1 + (1 + 1 + 2 + 4 + 1 + 2) == 12
    x = rng.standard_normal((1, 40, 2))
    y = model.eval()(x)
    t = 30
    later = x.copy()
    later[:, t + 1:] += 5.0                                  # the future changes nothing
    np.testing.assert_array_equal(model(later)[:, :t + 1], y[:, :t + 1])
    early = x.copy()
    early[:, :t - rf + 1] += 5.0                             # nor inputs beyond the field
    np.testing.assert_array_equal(model(early)[:, t], y[:, t])
    edge = x.copy()
    edge[:, t - rf + 1] += 5.0                               # its first input does
    assert not np.allclose(model(edge)[:, t], y[:, t])


@pytest.mark.parametrize("K,batch", [(2, 1), (2, 3), (3, 2), (1, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_generation_equals_forward_and_naive_recompute(K, batch, dtype, rng):
    model = small(dtype=dtype, K=K, dilations=(1, 2, 4, 8, 16, 1, 2, 4, 8, 16))
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    T = model.receptive_field + 12
    x = rng.standard_normal((batch, T, 2)).astype(dtype)
    full = model.eval()(x)
    gen = model.generator(batch)
    steps = np.stack([gen.step(x[:, t]) for t in range(T)], axis=1)
    assert steps.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(steps, full, atol=tol * max(1, np.abs(full).max()), rtol=0)
    # the naive way: recompute the receptive field ending at each step
    rf = model.receptive_field
    for t in (0, 5, rf - 1, rf, T - 1):
        window = x[:, max(0, t - rf + 1):t + 1]
        naive = model(window)[:, -1]
        np.testing.assert_allclose(steps[:, t], naive, atol=tol * max(1, np.abs(naive).max()),
                                   rtol=0)
    # prime() then step() continues the same sequence
    gen2 = model.generator(batch)
    last = gen2.prime(x[:, :T - 1])
    np.testing.assert_allclose(last, full[:, T - 2], atol=tol * max(1, np.abs(full).max()))
    np.testing.assert_allclose(gen2.step(x[:, T - 1]), full[:, T - 1],
                               atol=tol * max(1, np.abs(full).max()))


def test_default_model_and_bad_input():
    model = nn.WaveNet(seed=0)
    assert model.dilations == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] * 2
    assert model.receptive_field == 2 + 2 * 1023 == 2048
    assert len(model.blocks) == 20 and model.blocks[19].dilation == 512
    assert model.state_dict()["blocks.0.dilated.weight"].shape == (64, 32, 2)
    with pytest.raises(ValueError, match="in_channels"):
        model(np.zeros((1, 5, 2), np.float32))
    with pytest.raises(TypeError, match="x"):
        model(np.zeros((1, 5, 1), np.int64))
    with pytest.raises(ValueError, match="dilations"):
        nn.WaveNet(dilations=[])
    with pytest.raises(ValueError, match="dilations"):
        nn.WaveNet(dilations=[1, 0])
    gen = model.generator(2)
    with pytest.raises(ValueError, match="x"):
        gen.step(np.zeros((1, 1), np.float32))
    with pytest.raises(TypeError, match="model"):
        nn.WaveNetGenerator(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="backward"):
        nn.WaveNet(seed=0).backward(np.zeros((1, 5, 256), np.float32))


def peak_bytes(model, T):
    x = np.random.default_rng(0).standard_normal((2, T, 2))
    model.train()
    tracemalloc.start()
    y = model(x)
    model.backward(np.ones_like(y))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    model._cache = None
    return peak


def test_training_memory_grows_linearly_with_T():
    model = small(dilations=(1, 2, 4, 8, 16, 32, 64))
    peak_bytes(model, 256)                          # warm up
    sizes = [512, 1024, 2048, 4096]
    peaks = [peak_bytes(model, T) for T in sizes]
    # twice the steps, twice the memory (within 15%): linear, not quadratic, in T
    for a, b in zip(peaks, peaks[1:]):
        assert 1.7 < b / a < 2.3, peaks
    # and about what the activations take: per step, per layer, a few dozen float64 values
    per_step = peaks[-1] / (2 * 4096)
    assert per_step < 8 * (len(model.dilations) * 80 + 200), per_step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_and_load_round_trip(dtype, rng, tmp_path):
    """A WaveNet as a registered layer: in a compiled Sequential (the example's model), saved
    after training and loaded back, the same weights bit for bit, the same predictions and the
    same next training step; alone, its spec and weights file rebuild it."""
    import functools

    from rnnfast import losses, optim
    from rnnfast.models import Sequential, saving
    from rnnfast.models.layers import Input
    from rnnfast.nn.serialization import deserialize, serialize

    def build():
        wavenet = small(dtype=dtype, in_channels=1, dilations=(1, 2, 4, 1))
        model = Sequential([Input((None, 1), dtype=dtype), wavenet], seed=0)
        model.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=functools.partial(optim.Adam, lr=1e-2))
        return model, wavenet

    model, wavenet = build()
    x = rng.standard_normal((4, 50, 1)).astype(dtype)
    y = rng.integers(0, 11, (4, 50))
    model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    path = model.save(tmp_path / "wavenet.model")
    loaded = Sequential.load(path)
    restored = loaded.layers[-1]
    assert isinstance(restored, nn.WaveNet) and restored.get_config() == wavenet.get_config()
    for k, v in wavenet.state_dict().items():
        assert np.array_equal(restored.state_dict()[k], v), k
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    ours = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)["loss"]
    theirs = loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)["loss"]
    assert ours == theirs                       # the optimiser's state came back too
    # the layer alone: spec + weights
    spec = serialize(wavenet)
    assert spec["config"]["dilations"] == [1, 2, 4, 1]
    alone = deserialize(spec)
    saving.load_weights(alone, saving.save_weights(wavenet, tmp_path / "w.npz"))
    gen_a, gen_b = wavenet.generator(1), alone.generator(1)
    for t in range(5):
        np.testing.assert_array_equal(gen_a.step(x[:1, t]), gen_b.step(x[:1, t]))


RSS_SCRIPT = """
import sys
import numpy as np
from rnnfast import nn
def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
T = int(sys.argv[1])
model = nn.WaveNet(1, 64, 16, 16, 32, 32, dilations=[2 ** i for i in range(10)], seed=0)
model.train()
def step(T):
    x = np.random.default_rng(0).standard_normal((1, T, 1)).astype(np.float32)
    y = model(x)
    model.backward(np.ones_like(y))
    model.zero_grad()
step(500)                                   # warm up: imports, pools, first allocations
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                        # the peak RSS starts again from the current RSS
except OSError as e:
    sys.exit(print(f"SKIP cannot reset the peak RSS here: {e}"))
before = peak_kib()
step(T)
print(peak_kib() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_training_peak_rss_grows_linearly_with_T():
    """The whole process's peak resident memory (NumPy arrays and the kernels' own buffers),
    each T in a fresh subprocess, at 4,000, 8,000 and 16,000 steps: each doubling of T about
    adds twice as much to the peak of one training step: the peak is affine in T (a quadratic
    peak would add four times as much). glibc's malloc moves its mmap threshold up as large
    blocks are freed, so whether a step's arrays reuse the warm-up's freed heap pages (already
    resident) or map new ones changed from run to run (the 8,000 -> 16,000 growth was 1.5-2.6x
    the 4,000 -> 8,000 one): MALLOC_MMAP_THRESHOLD_ fixes the threshold, every large array is
    mapped when allocated and unmapped when freed, and the ratio is 1.94-1.97 run after run."""
    import subprocess

    from subprocess_env import PACKAGE_PARENT, python_env

    growth = []
    for T in (4000, 8000, 16000):
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(T)], capture_output=True,
                             text=True, env=python_env(RNNFAST_NUM_THREADS="1",
                                            MALLOC_MMAP_THRESHOLD_=str(128 * 1024)),
                             cwd=PACKAGE_PARENT, timeout=300)
        assert out.returncode == 0, out.stderr
        if out.stdout.startswith("SKIP"):
            pytest.skip(out.stdout[5:])
        growth.append(int(out.stdout.strip()) * 1024)      # VmHWM is in KiB
    first, second = growth[1] - growth[0], growth[2] - growth[1]     # per 4,000 and 8,000 steps
    assert first > 2 ** 20, growth                                   # a measurable slope
    assert 1.6 < second / first < 2.5, growth
    # and about what the kept activations take: a few dozen float32 values per step and layer
    assert second / 8000 < 4 * 10 * 120, growth


def test_save_and_load_more_than_64_layers(tmp_path):
    """A WaveNet with more dilations than the loader's old list bound (64) saves and loads (the
    bound is now 4096); a config list past the bound is refused with its length."""
    from rnnfast.models import Sequential
    from rnnfast.models.layers import Input
    from rnnfast.nn.serialization import MAX_LIST, check_config

    dilations = [2 ** i for i in range(10)] * 8            # 80 layers
    wavenet = nn.WaveNet(1, 5, 2, 2, 3, dilations=dilations, seed=0)
    model = Sequential([Input((None, 1)), wavenet], seed=0)
    model.compile(loss="mse", optimizer="adam")
    loaded = Sequential.load(model.save(tmp_path / "deep.model"))
    assert loaded.layers[-1].dilations == dilations
    x = np.linspace(-1, 1, 40, dtype=np.float32).reshape(1, 40, 1)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    config = dict(wavenet.get_config(), dilations=[1] * (MAX_LIST + 1))
    with pytest.raises(ValueError, match=f"list of {MAX_LIST + 1} items"):
        check_config(nn.WaveNet, config, "config")
