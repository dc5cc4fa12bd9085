"""load_model on a corpus of corrupted and crafted files, generated here from one good model
file: each must raise ValueError with the expected message (never BadZipFile, EOFError,
AttributeError, IndexError, OverflowError, a crash, or a large allocation), and the variants
that are valid (compressed, big-endian, Fortran-order arrays) must load."""
import io
import json
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from rnnfast.models import Sequential, load_model
from rnnfast.models import layers as L
from rnnfast.models.saving import CONFIG_KEY
from rnnfast.nn.serialization import serialize

PEAK_LIMIT = 64 * 2 ** 20  # bytes: no case may make the loader allocate more


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(file bytes, model, input batch) of a trained, compiled model."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (16, 5))
    y = rng.integers(0, 3, 16)
    model = Sequential([L.Embedding(20, 4, seed=0), L.Dropout(0.2, seed=1), L.LSTM(3, seed=2),
                        L.Dense(3, activation="softmax", seed=3)], seed=4)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("good") / "model.keras"
    model.save(path)
    return path.read_bytes(), model, x


# building blocks ----------------------------------------------------------------------------
def members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def pack(items, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the cases
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in items:
                zf.writestr(name, data)
    return buf.getvalue()


def npy(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), version=version)
    return buf.getvalue()


def load_npy(data):
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def document(raw):
    return json.loads(str(load_npy(dict(members(raw))[CONFIG_KEY + ".npy"])))


def replace(raw, name, data=None):
    """The archive with member ``name`` replaced by ``data`` (removed when None)."""
    items = [(n, d) for n, d in members(raw) if n != name]
    return pack(items + ([] if data is None else [(name, data)]))


def with_text(raw, text):
    return replace(raw, CONFIG_KEY + ".npy", npy(np.array(text)))


def with_doc(mutate):
    def build(raw):
        doc = document(raw)
        mutate(doc)
        return with_text(raw, json.dumps(doc))
    return build


def with_array(name, make):
    """Member ``weights/...`` etc. replaced by ``make(old array)`` (or removed if None)."""
    def build(raw):
        old = load_npy(dict(members(raw))[name + ".npy"])
        new = make(old)
        return replace(raw, name + ".npy", None if new is None else npy(new))
    return build


def add_member(name, data):
    return lambda raw: pack(members(raw) + [(name, data)])


def truncated(fraction=None, keep=None):
    def build(raw):
        n = keep if keep is not None else int(len(raw) * fraction)
        return raw[:n] if n >= 0 else raw[:len(raw) + n]
    return build


def flipped(locate, bit=0):
    """One bit flipped at the offset ``locate(raw)``."""
    def build(raw):
        data = bytearray(raw)
        data[locate(raw)] ^= 1 << bit
        return bytes(data)
    return build


def member_data_offset(name, skip=0):
    """Offset of byte ``skip`` of member ``name``'s stored data."""
    def locate(raw):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            info = zf.getinfo(name)
        n, m = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        return info.header_offset + 30 + n + m + skip
    return locate


def local_name_offset(name, skip):
    """Offset of character ``skip`` of ``name`` in its local file header."""
    def locate(raw):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return zf.getinfo(name).header_offset + 30 + skip
    return locate


def central_entry(raw, name):
    """Offset of ``name``'s central directory record."""
    offset = raw.find(b"PK\x01\x02")
    while offset != -1:
        n = struct.unpack("<H", raw[offset + 28:offset + 30])[0]
        if raw[offset + 46:offset + 46 + n].decode() == name:
            return offset
        offset = raw.find(b"PK\x01\x02", offset + 4)
    raise AssertionError(f"{name} not found")


def patched_central(name, field_offset, fmt, value):
    """A field of ``name``'s central directory record set to ``value``."""
    def build(raw):
        data = bytearray(raw)
        at = central_entry(raw, name) + field_offset
        data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, value)
        return bytes(data)
    return build


def deflate_bomb(raw):
    """A member of 48 MiB of zeros, deflated to ~48 KiB."""
    zeros = npy(np.zeros(12 * 2 ** 20, np.float32))
    items = [(n, d) for n, d in members(raw)] + [("weights/bomb.npy", zeros)]
    return pack(items, zipfile.ZIP_DEFLATED)


def npy_with_header(header, payload=b""):
    text = repr(header).encode("latin1")
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


W = "weights/dense.weight"
LAYERS = ("config", "layers")


def layer_config(index):
    def get(doc):
        return doc["config"]["layers"][index]["config"]
    return get


def set_in(get, key, value):
    def mutate(doc):
        get(doc)[key] = value
    return with_doc(mutate)


def set_doc(path, value):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return with_doc(mutate)


def delete_doc(path):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return with_doc(mutate)


def nested_time_distributed(depth):
    def mutate(doc):
        spec = {"class_name": "layers.Dense", "config": {"units": 3, "activation": "softmax",
                                                     "use_bias": True, "input_dim": None,
                                                     "dtype": "float32"}}
        for _ in range(depth):
            spec = {"class_name": "nn.TimeDistributed", "config": {"layer": spec}}
        doc["config"]["layers"][3].update(spec)
    return with_doc(mutate)


EMB, DROP, LSTM_, DENSE = (layer_config(i) for i in range(4))
OPT = ("compile", "optimizer")
NOT_ARCHIVE = "not a valid archive"

CASES = [
    # truncated at several offsets
    ("truncated-empty", truncated(keep=0), NOT_ARCHIVE),
    ("truncated-10-bytes", truncated(keep=10), NOT_ARCHIVE),
    ("truncated-quarter", truncated(0.25), NOT_ARCHIVE),
    ("truncated-half", truncated(0.5), NOT_ARCHIVE),
    ("truncated-three-quarters", truncated(0.75), NOT_ARCHIVE),
    ("truncated-last-100", truncated(keep=-100), NOT_ARCHIVE),
    ("truncated-last-byte", truncated(keep=-1), NOT_ARCHIVE),
    # bit flips (the archive's CRCs and structure catch them)
    ("bitflip-weight-data", flipped(member_data_offset(W + ".npy", 140)), "Bad CRC-32"),
    ("bitflip-npy-header", flipped(member_data_offset(W + ".npy", 20)), "Bad CRC-32"),
    ("bitflip-document", flipped(member_data_offset(CONFIG_KEY + ".npy", 300), 3),
     "Bad CRC-32"),
    ("bitflip-local-header-name", flipped(local_name_offset(W + ".npy", 3)),
     "File name in directory"),
    ("bitflip-end-record", flipped(lambda raw: len(raw) - 22), NOT_ARCHIVE),
    ("random-bytes", lambda raw: np.random.default_rng(1).bytes(len(raw)), NOT_ARCHIVE),
    # wrong format or version
    ("wrong-format", set_doc(("format",), "keras.Sequential"), "not a model saved by rnnfast"),
    ("version-1", set_doc(("version",), 1), "unsupported model file version 1"),
    ("version-99", set_doc(("version",), 99), "unsupported model file version 99"),
    ("version-string", set_doc(("version",), "2"), "unsupported model file version 2"),
    ("version-true", set_doc(("version",), True), "unsupported model file version"),
    ("plain-npz-no-document", lambda raw: pack([("weights/a.npy", npy(np.zeros(2)))]),
     "not a model saved by rnnfast"),
    ("document-not-json", lambda raw: with_text(raw, "{'format': 1"), "not valid JSON"),
    ("document-a-list", lambda raw: with_text(raw, "[1, 2]"), "not a JSON object"),
    ("document-nan-constant", lambda raw: with_text(raw, '{"format": NaN}'),
     "not valid JSON.*NaN is not allowed"),
    ("document-nested-100000", lambda raw: with_text(raw, "[" * 100000 + "]" * 100000),
     "not valid JSON"),
    ("document-5000-digit-int", lambda raw: with_text(raw, '{"version": ' + "9" * 5000 + "}"),
     "not valid JSON"),
    ("document-float-array", lambda raw: replace(raw, CONFIG_KEY + ".npy", npy(np.zeros(3))),
     "__model__.*unexpected dtype float64"),
    ("document-string-vector", lambda raw: replace(raw, CONFIG_KEY + ".npy",
                                                   npy(np.array(["a", "b"]))),
     "expected a single string"),
    # extra and missing keys
    ("extra-top-key", set_doc(("exec",), "import os"), "has keys .*exec"),
    ("missing-rng", delete_doc(("rng",)), "has keys"),
    ("missing-config-layers", delete_doc(("config", "layers")), "config: expected the keys"),
    ("extra-layer-argument", set_in(LSTM_, "eval", "__import__('os')"),
     "unknown argument.*eval"),
    ("missing-layer-argument", delete_doc(("config", "layers", 2, "config", "units")),
     "missing argument.*units"),
    ("extra-weight", add_member("weights/extra.bias.npy", npy(np.zeros(3, np.float32))),
     "unexpected keys: \\['extra.bias'\\]"),
    ("missing-weight", with_array(W, lambda a: None),
     "asks for a parameter of 9 elements, more than the file's weights holds"),
    ("missing-bias", with_array("weights/dense.bias", lambda a: None),
     "asks for a parameter of 3 elements, more than the file's weights holds"),
    ("extra-member-kind", add_member("code/run.npy", npy(np.zeros(1))),
     "unexpected entry 'code/run'"),
    ("missing-optimizer-moment", with_array("optimizer/0/exp_avg", lambda a: None),
     "state of parameter 0: entries"),
    # path-like and odd names
    ("member-parent-path", add_member("../../evil.npy", npy(np.zeros(1))),
     "is not an array name"),
    ("member-absolute-path", add_member("/etc/passwd.npy", npy(np.zeros(1))),
     "is not an array name"),
    ("member-dotdot-inside", add_member("weights/../x.npy", npy(np.zeros(1))),
     "is not an array name"),
    ("member-not-npy", add_member("readme.txt", b"hello"), "unexpected member 'readme.txt'"),
    ("member-duplicated", lambda raw: pack(members(raw) + [members(raw)[0]]), "appears twice"),
    ("weight-name-with-slash", add_member("weights/a/b.npy", npy(np.zeros(1, np.float32))),
     "unexpected entry 'weights/a/b'"),
    ("layer-name-path-like", set_doc(("config", "layers", 0, "name"), "../etc"),
     "layers\\[0\\].name"),
    # unknown layer, activation, loss, optimizer, generator names
    ("unknown-layer-class", set_doc(("config", "layers", 3, "class_name"), "nn.Evil"),
     "unknown layer class 'nn.Evil'"),
    ("layer-class-os-system", set_doc(("config", "layers", 3, "class_name"), "os.system"),
     "unknown layer class 'os.system'"),
    ("layer-class-dunder", set_doc(("config", "layers", 3, "class_name"), "nn.__class__"),
     "unknown layer class"),
    ("unknown-model-class", set_doc(("class",), "builtins.eval"), "unknown model class"),
    ("unknown-activation", set_in(DENSE, "activation", "os.system"),
     "activation: expected one of"),
    ("unknown-loss", set_doc(("compile", "loss", "class"), "Loss"), "compile.loss"),
    ("unknown-metric", set_doc(("compile", "metrics"), ["evil"]), "unknown metric 'evil'"),
    ("unknown-optimizer", set_doc(OPT + ("class",), "Optimizer"), "unknown class 'Optimizer'"),
    ("unknown-optimizer-name", set_doc(("compile", "optimizer_name"), "nadam"),
     "optimizer_name"),
    ("unknown-bit-generator", set_doc(("rng", "states", 0, "bit_generator"), "os.system"),
     "unknown bit generator"),
    ("bad-generator-state", set_doc(("rng", "states", 0, "state", "state"), "x"),
     "not a PCG64 state"),
    ("rng-owner-unknown-module", set_doc(("rng", "owners", "../x"), 0), "rng.owners"),
    ("rng-owner-bad-index", set_doc(("rng", "owners", ""), 7), "an index below"),
    # odd config values
    ("units-negative", set_in(LSTM_, "units", -3), "units: expected an int >= 1"),
    ("units-string", set_in(LSTM_, "units", "ten"), "units: expected an int"),
    ("units-float", set_in(DENSE, "units", 3.5), "units: expected an int"),
    ("units-huge", set_in(DENSE, "units", 10 ** 12), "out of range"),
    ("units-inf", lambda raw: with_text(raw, json.dumps(document(raw)).replace(
        '"units": 3', '"units": 1e999', 1)), "expected a finite number"),
    ("use-bias-string", set_in(DENSE, "use_bias", "yes"), "expected true or false"),
    ("dtype-object", set_in(DENSE, "dtype", "object"), "expected one of \\['float32'"),
    ("dropout-p-2", set_in(DROP, "p", 2.0), "p: expected a float in \\[0, 1\\]"),
    ("config-not-dict", set_doc(("config", "layers", 1, "config"), [1, 2]),
     "expected a config dict"),
    ("config-value-dict", set_in(DENSE, "units", {"a": 1}), "must be a layer spec"),
    ("long-string", set_in(DENSE, "activation", "x" * 10000), "string of 10000 characters"),
    ("nested-depth-6", nested_time_distributed(6), "nested more than 4 deep"),
    ("layers-not-list", set_doc(("config", "layers"), {"a": 1}), "config.layers"),
    ("input-dtype-huge-string", set_doc(("config", "input"), {"shape": [5],
                                                              "dtype": "U1000000000"}),
     "config.input.dtype"),
    ("loss-from-logits-string", set_doc(("compile", "loss", "from_logits"), "yes"),
     "from_logits"),
    ("clip-string", set_doc(("compile", "clip", "clipnorm"), "big"), "compile.clip"),
    ("clip-negative", set_doc(("compile", "clip", "clipnorm"), -1.0), "clipnorm: expected"),
    ("optimizer-lr-negative", lambda raw: set_doc(OPT + ("groups", 0, "options", "lr"),
                                                  -1.0)(raw), "lr: expected a number >= 0"),
    ("optimizer-amsgrad-int", set_doc(OPT + ("groups", 0, "options", "amsgrad"), 1),
     "amsgrad: expected true or false"),
    ("optimizer-unknown-option", set_doc(OPT + ("groups", 0, "options", "code"), 1),
     "unknown option 'code'"),
    ("optimizer-index-out-of-range", set_doc(OPT + ("groups", 0, "params", 0), 99),
     "99 is not a new index"),
    ("optimizer-index-repeated", set_doc(OPT + ("groups", 0, "params", 1), 0),
     "0 is not a new index"),
    ("optimizer-step-negative", set_doc(OPT + ("state", "0", "step"), -5),
     "step must be an int >= 0"),
    ("optimizer-state-extra-scalar", set_doc(OPT + ("state", "0", "eval"), 1),
     "state of parameter 0: entries"),
    # sizes: oversized shapes, against the bytes stored and the configs
    ("npy-shape-1e12", lambda raw: replace(raw, W + ".npy", npy_with_header(
        {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)}, b"\0" * 64)),
     "declares shape \\(1000000000000,\\)"),
    ("npy-shape-overflowing", lambda raw: replace(raw, W + ".npy", npy_with_header(
        {"descr": "<f4", "fortran_order": False, "shape": (2 ** 62, 2 ** 62)}, b"\0" * 64)),
     "declares shape"),
    ("npy-shape-negative", lambda raw: replace(raw, W + ".npy", npy_with_header(
        {"descr": "<f4", "fortran_order": False, "shape": (-1,)}, b"\0" * 4)),
     "bad shape|shape"),
    ("npy-object-dtype", lambda raw: replace(raw, W + ".npy", npy_with_header(
        {"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8)),
     "unexpected dtype object"),
    ("npy-bad-magic", lambda raw: replace(raw, W + ".npy", b"\x93NUMPX" + b"\0" * 100),
     "magic string"),
    ("npy-version-3", lambda raw: replace(raw, W + ".npy", npy(np.zeros(3, np.float32),
                                                               (3, 0))),
     "unsupported .npy version \\(3, 0\\)"),
    ("weight-int64", with_array(W, lambda a: a.astype(np.int64)), "unexpected dtype int64"),
    ("weight-float64", with_array(W, lambda a: a.astype(np.float64)),
     "dtype float64, the layer's config says float32"),
    ("weight-transposed", with_array("weights/lstm.rnn.weight_ih_l0",
                                     lambda a: np.ascontiguousarray(a.T)),
     "lstm.rnn.weight_ih_l0'\\]: expected shape \\(12, 4\\), got \\(4, 12\\)"),
    ("weight-wrong-size", with_array(W, lambda a: np.zeros((3, 4), a.dtype)),
     "do not fit the model's layers"),
    ("embedding-config-huge", set_in(EMB, "input_dim", 2 ** 31 - 1),
     "asks for a parameter of 8,589,934,588 elements, more than the file's weights holds"),
    ("embedding-config-larger", set_in(EMB, "output_dim", 40),
     "asks for a parameter|do not fit"),
    ("build-input-huge", set_doc(("config", "build_input_shape"), [None, 100000, 100000]),
     "a sample of 10,000,000,000 elements \\(at most 4,194,304\\)"),
    ("input-length-huge", set_in(EMB, "input_length", 2 ** 31 - 1),
     "the input shape it declares: a sample of 2,147,483,647 elements"),
    ("build-input-zero", set_doc(("config", "build_input_shape"), [None, 0]),
     "build_input_shape"),
    # NaN and inf in the arrays
    ("nan-in-weights", with_array(W, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 2,
                                                        np.nan, a).astype(a.dtype)),
     "weights/dense.weight.*holds NaN or inf"),
    ("inf-in-optimizer", with_array("optimizer/1/exp_avg_sq",
                                    lambda a: np.full_like(a, np.inf)),
     "optimizer/1/exp_avg_sq.*holds NaN or inf"),
    # zip bombs and archive tricks
    ("deflate-bomb-48MiB", deflate_bomb, "more than max_bytes"),
    ("declared-size-1e12", patched_central(W + ".npy", 24, "<I", 2 ** 32 - 1),
     "inconsistent sizes|would inflate"),
    ("encrypted-flag", patched_central(W + ".npy", 8, "<H", 1), "is encrypted"),
    ("bzip2-member", lambda raw: pack(members(raw), zipfile.ZIP_BZIP2),
     "compression method 12"),
]


@pytest.mark.parametrize("name, build, expected", CASES, ids=[c[0] for c in CASES])
def test_corrupted_or_crafted_file_raises_clear_value_error(good, tmp_path, name, build,
                                                            expected):
    raw, _, _ = good
    path = tmp_path / f"{name}.keras"
    path.write_bytes(build(raw))
    max_bytes = 2 ** 20 if name.startswith("deflate-bomb") else None
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=expected) as info:
            load_model(path, max_bytes=max_bytes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)  # every message names the file
    assert peak < PEAK_LIMIT, f"the loader allocated {peak:,} bytes"


def test_the_corpus_is_large_and_varied():
    assert len(CASES) >= 30
    assert len({c[0].split("-")[0] for c in CASES}) >= 20


@pytest.mark.parametrize("variant", ["deflated", "big-endian", "fortran-order"])
def test_valid_variants_load(good, tmp_path, variant):
    raw, model, x = good
    items = members(raw)
    if variant == "deflated":
        data = pack(items, zipfile.ZIP_DEFLATED)
    else:
        def convert(a):
            if variant == "big-endian":
                return a.astype(a.dtype.newbyteorder(">"))
            return np.asfortranarray(a)
        data = pack([(n, npy(convert(load_npy(d))) if n.startswith("weights/") else d)
                     for n, d in items])
    path = tmp_path / "variant.keras"
    path.write_bytes(data)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_the_good_file_loads(good, tmp_path):
    raw, model, x = good
    path = tmp_path / "good.keras"
    path.write_bytes(pack(members(raw)))  # rewritten by the corpus' own packer
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))


# fuzzing: random values in random places of the document, random bytes in random entries ----
FUZZ_VALUES = [None, True, False, 0, -1, 1, 2, 3, 7, 64, 2 ** 31, -2 ** 63, 10 ** 30, 0.5, -0.0,
               1.5, 1e308, "", "x", "float64", "relu", "same", "channels_first", "../../x",
               "nn.Linear", "layers.LSTM", "PCG64", "Adam", [], [1], [None], [1, 2], {},
               {"a": 1}, {"class_name": "nn.ReLU", "config": {}}]


def leaf_paths(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaf_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaf_paths(v, path + (i,))
    if path:
        yield path


def mutate_document(doc, rng):
    paths = list(leaf_paths(doc))
    for _ in range(rng.choice([1, 1, 2, 3])):
        path = rng.choice(paths)
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            if rng.random() < 0.1 and isinstance(target, dict):
                del target[path[-1]]
            else:
                target[path[-1]] = rng.choice(FUZZ_VALUES)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed the path


def mutate_entry(items, rng):
    target = rng.randrange(len(items))
    out = []
    for i, (name, data) in enumerate(items):
        if i == target:
            data = bytearray(data)
            for _ in range(rng.choice([1, 2, 4])):
                at = rng.randrange(min(len(data), 128)) if rng.random() < 0.7 else \
                    rng.randrange(len(data))
                data[at] = rng.randrange(256)
            data = bytes(data)
        out.append((name, data))
    return out


@pytest.mark.parametrize("kind", ["document", "entry-bytes"])
def test_fuzzed_files_load_or_raise_value_error(good, tmp_path, kind):
    """Random changes (the archive's checksums kept valid, as a crafted file would): each file
    loads, or raises ValueError; nothing else escapes."""
    import random

    raw, _, x = good
    rng = random.Random(kind)
    items, base = members(raw), document(raw)
    outcomes = {"loaded": 0, "ValueError": 0}
    for trial in range(150):
        if kind == "document":
            doc = json.loads(json.dumps(base))
            mutate_document(doc, rng)
            data = with_text(raw, json.dumps(doc))
        else:
            data = pack(mutate_entry(items, rng))
        path = tmp_path / "fuzz.keras"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = load_model(path)
                model.predict(x[:2])
            outcomes["loaded"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
    print(f"\n{kind}: {outcomes}")
    assert outcomes["ValueError"] > 100  # most changes are caught


# functional models: the graph's part of the document ----------------------------------------
@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """(file bytes, model, inputs) of a trained functional encoder-decoder with attention."""
    from rnnfast.models import Input, Model

    rng = np.random.default_rng(1)
    source = Input(shape=(None,), dtype="int32", name="source")
    target = Input(shape=(None,), dtype="int32", name="target")
    enc, h, c = L.LSTM(8, return_sequences=True, return_state=True, name="encoder", seed=0)(
        L.Embedding(20, 4, name="src_embedding", seed=1)(source))  # nodes 0, 1
    dec = L.LSTM(8, return_sequences=True, name="decoder", seed=2)(
        L.Embedding(20, 4, name="tgt_embedding", seed=3)(target), initial_state=[h, c])  # 2, 3
    context = L.Attention(name="attention")([dec, enc])  # node 4
    joined = L.Concatenate(name="concat")([dec, context])  # node 5
    probs = L.Dense(20, activation="softmax", name="probs", seed=4)(joined)  # node 6
    model = Model([source, target], probs, seed=5)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    x = [rng.integers(1, 20, (8, 6)), rng.integers(1, 20, (8, 4))]
    model.fit(x, rng.integers(0, 20, (8, 4)), epochs=1, batch_size=4, verbose=0)
    path = tmp_path_factory.mktemp("graph") / "model.keras"
    model.save(path)
    return path.read_bytes(), model, x


NODES = ("config", "nodes")
GRAPH_CASES = [
    ("node-unknown-layer", set_doc(NODES + (6, "layer"), 99),
     "config.nodes\\[6\\].layer: expected a layer index below 7"),
    ("node-layer-bool", set_doc(NODES + (6, "layer"), True), "nodes\\[6\\].layer"),
    ("node-layer-negative", set_doc(NODES + (6, "layer"), -1), "nodes\\[6\\].layer"),
    ("node-cycle", set_doc(NODES + (3, "inputs", 0), ["node", 5, 0]),
     "nodes\\[3\\].inputs\\[0\\]: node 5 is not a call before this one"),
    ("node-self-reference", set_doc(NODES + (4, "inputs", 0), ["node", 4, 0]),
     "node 4 is not a call before this one"),
    ("node-huge-index", set_doc(NODES + (4, "inputs", 0), ["node", 10 ** 12, 0]),
     "is not a call before this one"),
    ("node-huge-output-index", set_doc(NODES + (4, "inputs", 1), ["node", 1, 2 ** 40]),
     "node 1 has 3 output\\(s\\), not 1099511627776"),
    ("node-float-output-index", set_doc(NODES + (4, "inputs", 1), ["node", 1, 0.0]),
     "node 1 has 3 output"),
    ("dangling-input", set_doc(NODES + (0, "inputs", 0), ["input", 5, 0]),
     "nodes\\[0\\].inputs\\[0\\]: no input 5"),
    ("ref-not-a-list", set_doc(NODES + (0, "inputs", 0), "source"),
     "expected \\['input', index, 0\\]"),
    ("ref-unknown-kind", set_doc(NODES + (0, "inputs", 0), ["layer", 0, 0]),
     "expected \\['input', index, 0\\]"),
    ("node-no-inputs", set_doc(NODES + (0, "inputs"), []), "nodes\\[0\\].inputs"),
    ("node-unknown-key", set_doc(NODES + (0, "code"), "x"), "nodes\\[0\\]: expected"),
    ("node-bad-form", set_doc(NODES + (0, "form"), "eval"), "nodes\\[0\\].form"),
    ("node-states-huge", set_doc(NODES + (3, "states"), 10 ** 9), "nodes\\[3\\].states"),
    ("node-states-on-dense", set_doc(NODES + (6, "states"), 1), "nodes\\[6\\].states"),
    ("node-option-unknown", set_doc(NODES + (4, "options"), {"training": True}),
     "nodes\\[4\\].options"),
    ("node-option-string", set_doc(NODES + (4, "options"), {"use_causal_mask": "yes"}),
     "nodes\\[4\\].options"),
    ("node-option-on-dense", set_doc(NODES + (6, "options"), {"use_causal_mask": True}),
     "use_causal_mask is an argument of Attention"),
    ("node-wrong-arity", set_doc(NODES + (4, "inputs"), [["node", 3, 0]]),
     "Attention takes a list \\[query, value\\]"),
    ("node-list-into-dense", set_doc(NODES + (6, "form"), "list"),
     "'probs' \\(Dense\\): takes one tensor, not a list"),
    ("node-rewired", set_doc(NODES + (6, "inputs"), [["node", 1, 1]]),
     "'probs' \\(Dense\\) called on inputs of shape \\(None, 8\\): x: expected 16 features"),
    ("node-unreachable", lambda raw: with_doc(lambda doc: doc["config"]["nodes"].append(
        dict(doc["config"]["nodes"][6])))(raw), "1 of the calls lead to no output"),
    ("nodes-not-a-list", set_doc(NODES, {"0": 1}), "config.nodes: expected a list"),
    ("nodes-too-many", set_doc(NODES, [{}] * 5000), "config.nodes: expected a list of 1 to"),
    ("layer-not-called", lambda raw: with_doc(lambda doc: doc["config"]["layers"].append(
        dict(doc["config"]["layers"][5], name="extra")))(raw),
     "config.layers\\[7\\]: the layer is not called by any node"),
    ("layer-not-called-with-weights", lambda raw: with_doc(
        lambda doc: doc["config"]["layers"].append(
            dict(doc["config"]["layers"][6], name="extra")))(raw),
     "config.layers\\[7\\] \\(layers.Dense\\): the configuration asks for a parameter"),
    ("layer-name-twice", set_doc(("config", "layers", 1, "name"), "probs"),
     "the name 'probs' is used twice"),
    ("layer-name-as-input", set_doc(("config", "layers", 1, "name"), "source"),
     "the name 'source' is used twice"),
    ("graph-unknown-layer-class", set_doc(("config", "layers", 2, "class_name"), "os.system"),
     "unknown layer class 'os.system'"),
    ("input-name-path", set_doc(("config", "inputs", 0, "name"), "../x"),
     "inputs\\[0\\].name"),
    ("input-shape-huge", set_doc(("config", "inputs", 0, "shape"), [None] * 5),
     "inputs\\[0\\].shape: a sample of"),
    ("input-shape-zero", set_doc(("config", "inputs", 0, "shape"), [0]),
     "inputs\\[0\\].shape"),
    ("input-dtype-object", set_doc(("config", "inputs", 0, "dtype"), "object"),
     "inputs\\[0\\].dtype"),
    ("inputs-empty", set_doc(("config", "inputs"), []), "config.inputs"),
    ("output-bad-ref", set_doc(("config", "outputs", 0), ["node", 99, 0]),
     "config.outputs\\[0\\]: node 99"),
    ("output-names-missing", set_doc(("config", "output_names"), []), "config.output_names"),
    ("output-name-path", set_doc(("config", "output_names", 0), "a/b"), "output_names\\[0\\]"),
    ("graph-missing-key", delete_doc(("config", "nodes")), "config: expected the keys"),
    ("compile-loss-weight-negative", set_doc(("compile", "loss_weights", 0), -1.0),
     "compile.loss_weights"),
    ("compile-loss-list-too-long", set_doc(("compile", "loss"), [None] * 100),
     "compile: expected lists"),
    ("compile-loss-weights-missing", delete_doc(("compile", "loss_weights")),
     "compile: expected keys"),
    ("compile-losses-per-output-mismatch",
     lambda raw: with_doc(lambda doc: doc["compile"].update(
         loss=[doc["compile"]["loss"][0]] * 2, metrics=[[], []],
         loss_weights=[1.0, 1.0]))(raw), "compile: loss: expected 1 losses"),
]


@pytest.mark.parametrize("name, build, expected", GRAPH_CASES, ids=[c[0] for c in GRAPH_CASES])
def test_crafted_graph_file_raises_clear_value_error(graph, tmp_path, name, build, expected):
    raw, _, _ = graph
    path = tmp_path / f"{name}.keras"
    path.write_bytes(build(raw))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=expected) as info:
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < PEAK_LIMIT, f"the loader allocated {peak:,} bytes"


def test_the_graph_file_loads(graph, tmp_path):
    raw, model, x = graph
    path = tmp_path / "good.keras"
    path.write_bytes(pack(members(raw)))
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [n["layer"] for n in document(raw)["config"]["nodes"]] == list(range(7))


def test_fuzzed_graph_documents_load_or_raise_value_error(graph, tmp_path):
    import random

    raw, _, x = graph
    rng = random.Random("graph")
    base = document(raw)
    outcomes = {"loaded": 0, "ValueError": 0}
    for trial in range(150):
        doc = json.loads(json.dumps(base))
        mutate_document(doc, rng)
        path = tmp_path / "fuzz.keras"
        path.write_bytes(with_text(raw, json.dumps(doc)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = load_model(path)
                model.predict([a[:2] for a in x])
            outcomes["loaded"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
    print(f"\ngraph: {outcomes}")
    assert outcomes["ValueError"] > 100


# nested models and explicit masks ----------------------------------------------------------
@pytest.fixture(scope="module")
def nested_graph(tmp_path_factory):
    """(file bytes, model, inputs) of a functional model holding a functional encoder called
    twice, a Sequential, and an LSTM called with an explicit mask."""
    from rnnfast.models import Input, Model, Sequential

    rng = np.random.default_rng(2)
    enc_in = Input(shape=(5, 3), name="enc_in")
    encoder = Model(enc_in, L.Dense(4, name="proj", seed=0)(enc_in), name="encoder")
    head = Sequential([L.Dense(3, name="h1", seed=1), L.Dense(2, name="h2", seed=2)],
                      name="head")
    a, b = Input(shape=(5, 3), name="a"), Input(shape=(5, 3), name="b")
    m = Input(shape=(5,), dtype="bool", name="m")
    joined = L.Concatenate(name="concat")([encoder(a), encoder(b)])  # nodes 0, 1, 2
    h = L.LSTM(4, name="lstm", seed=3)(joined, mask=m)  # node 3
    model = Model([a, b, m], head(h), seed=4)  # node 4
    model.compile(loss="mse", optimizer="adam")
    x = [rng.standard_normal((6, 5, 3)), rng.standard_normal((6, 5, 3)),
         np.arange(5) < rng.integers(1, 6, (6, 1))]  # rows padded at the end
    model.fit(x, rng.standard_normal((6, 2)), epochs=1, batch_size=3, verbose=0)
    path = tmp_path_factory.mktemp("nested") / "model.keras"
    model.save(path)
    return path.read_bytes(), model, x


def nest_deeper(levels):
    """The encoder wrapped in ``levels`` more functional models, each calling the one inside."""
    def mutate(doc):
        spec = dict(doc["config"]["layers"][0])
        for k in range(levels):
            spec = {"name": f"wrap{k}", "class_name": "models.Model", "config": {
                "name": f"wrap{k}", "inputs": [{"name": "w_in", "shape": [5, 3], "dtype": None}],
                "layers": [spec], "nodes": [{"layer": 0, "inputs": [["input", 0, 0]],
                                             "form": "single", "states": 0, "options": {}}],
                "outputs": [["node", 0, 0]], "output_names": [spec["name"]]}}
        doc["config"]["layers"][0] = dict(spec, name="encoder")
    return with_doc(mutate)


def call_bomb(doc):
    """A Sequential of 4,000 Dropout layers called 5 times: 20,000 layer calls."""
    dropout = {"class_name": serialize(L.Dropout(0.1))["class_name"],
               "config": L.Dropout(0.1).get_config()}
    inner = {"name": "many", "class_name": "models.Sequential", "config": {
        "name": "many", "input": None, "build_input_shape": None, "build_input_dtype": None,
        "layers": [dict(dropout, name=f"d{i}") for i in range(4000)]}}
    config = doc["config"]
    config["layers"].append(inner)
    index = len(config["layers"]) - 1
    for _ in range(5):
        config["nodes"].append({"layer": index, "inputs": [["input", 0, 0]], "form": "single",
                                "states": 0, "options": {}})


ENC = ("config", "layers", 0, "config")
NESTED_CASES = [
    ("nested-too-deep", nest_deeper(4), "models nested more than 4 deep"),
    ("nested-call-bomb", with_doc(call_bomb), "more than 16,384 layer calls"),
    ("nested-unknown-class", set_doc(ENC + ("layers", 0, "class_name"), "os.system"),
     "config.layers\\[0\\] \\(models.Model\\): config.layers\\[0\\]: unknown layer class"),
    ("nested-missing-key", delete_doc(ENC + ("nodes",)),
     "config.layers\\[0\\] \\(models.Model\\): config: expected the keys"),
    ("nested-cycle", set_doc(ENC + ("nodes", 0, "inputs", 0), ["node", 0, 0]),
     "node 0 is not a call before this one"),
    ("nested-sequential-bad-layers", set_doc(("config", "layers", 3, "config", "layers"), "x"),
     "config.layers\\[3\\] \\(models.Sequential\\): config.layers: expected a list"),
    ("nested-class-as-plain-layer", set_doc(("config", "layers", 3, "class_name"),
                                            "layers.Sequential"), "unknown layer class"),
    ("nested-wrong-arity", with_doc(lambda doc: doc["config"]["nodes"][0].update(
        form="list", inputs=[["input", 0, 0], ["input", 1, 0]])),
     "the model has 1 input\\(s\\), got 2"),
    ("mask-slot-out-of-range", set_doc(NODES + (3, "masks"), [1]),
     "nodes\\[3\\].masks: expected increasing positions"),
    ("mask-not-a-list", set_doc(NODES + (3, "masks"), 0), "nodes\\[3\\].masks: expected a list"),
    ("mask-too-many", set_doc(NODES + (3, "masks"), [0, 0]), "nodes\\[3\\].masks"),
    ("mask-on-a-float-input", set_doc(NODES + (3, "inputs", 1), ["input", 0, 0]),
     "mask: expected a tensor of shape \\(batch, steps\\)"),
]


@pytest.mark.parametrize("name, build, expected", NESTED_CASES,
                         ids=[c[0] for c in NESTED_CASES])
def test_crafted_nested_file_raises_clear_value_error(nested_graph, tmp_path, name, build,
                                                      expected):
    raw, _, _ = nested_graph
    path = tmp_path / f"{name}.keras"
    path.write_bytes(build(raw))
    with pytest.raises(ValueError, match=expected) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_the_nested_file_loads_and_a_legal_depth_too(nested_graph, tmp_path):
    raw, model, x = nested_graph
    doc = document(raw)
    assert [layer["class_name"] for layer in doc["config"]["layers"]] == [
        "models.Model", "layers.Concatenate", "layers.LSTM", "models.Sequential"]
    assert doc["config"]["nodes"][3]["masks"] == [0]
    path = tmp_path / "good.keras"
    path.write_bytes(raw)
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))
    from rnnfast.models import Input, Model

    inner = Model(x0 := Input((3,)), L.Dense(2, seed=0)(x0), name="level4")
    for level in (3, 2, 1):  # four models deep inside the outer one: allowed
        inner = Model(x0 := Input((3,)), inner(x0), name=f"level{level}")
    outer = Model(x0 := Input((3,)), inner(x0))
    loaded = load_model(outer.save(tmp_path / "deep.keras"))
    ones = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(ones), outer.predict(ones))
