"""``save_model`` / ``load_model``: a model in one file of NumPy arrays, written atomically and
read back by a loader that trusts nothing in it.

The file is a zip of ``.npy`` arrays (NumPy's ``.npz`` layout, no pickles), written exactly at
the path given (any suffix, ``.keras`` included):

- ``__model__``: a JSON document (a 0-d string array): the format and its version, the model's
  class and ``get_config()`` (each layer's registered class name and ``get_config()``), the
  compile settings (loss, metric names, clipping, the optimiser's class, options and scalar
  state), the states of the random generators (shuffling, dropout) and, in a backup, the epoch;
- ``weights/<name>``: every parameter under its ``state_dict`` name, in its dtype;
- ``optimizer/<parameter index>/<name>``: the optimiser's per-parameter arrays (moments).

**Atomic writes.** Every file (``save_model``, ``save_weights``, the checkpoint callbacks) is
written to a temporary file in the target's folder, flushed and fsync'ed, then renamed over the
target with ``os.replace`` (and the folder fsync'ed): a crash, a full disk or Ctrl-C at any
moment leaves either the previous file or the new one, never a truncated one. A process killed
during a save may leave its temporary file (``.<name>.<random>.tmp``) behind.

**Loading untrusted files.** ``load_model`` reads the archive itself instead of ``np.load``:
only ``.npy`` members with expected names (no path-like names, no duplicates), stored or
deflated, at most ``max_bytes`` uncompressed in all and at most 1100 times their compressed
size (a zip bomb is refused before it is inflated); each array's header is checked against the
bytes actually stored, dtypes against the expected ones (float32/float64 weights), weights and
optimiser state for NaN and inf. The document is parsed as JSON only, and every part of it is
checked before anything is built: layer classes, losses, optimisers, activations and random
generators are chosen from fixed tables of allowed names (never looked up on a module), each
config value against its constructor (see ``rnnfast.nn.serialization``), and the parameters the
configs ask for may not exceed what the file stores (``rnnfast.nn.module.parameter_budget``), so
a crafted config cannot make the loader allocate more than the file holds. Building runs one
zero sample of the saved input shape (at most 2**22 elements) through the layers, as Keras'
``build`` does. Whatever is wrong raises ``ValueError`` naming the file and the part; a missing
file raises FileNotFoundError.

Loading rebuilds the model with its class's ``from_config`` and copies every array, so
predictions and continued training match the saved model bit for bit. Metrics given as
functions and losses or optimisers of other classes cannot be written as data: they are left
out with a warning.
"""
import contextlib
import json
import math
import os
import re
import stat
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from rnnfast import losses
from rnnfast.models import optimizers as optimizers_mod
from rnnfast.nn.module import parameter_budget
from rnnfast.nn.serialization import is_finite_number

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "restore_state",
           "register_model", "atomic_write", "read_arrays"]

FORMAT = "rnnfast.model"
VERSION = 2
CONFIG_KEY = "__model__"
MAX_BYTES = 2 ** 32            # default bound of a file's uncompressed arrays
MAX_DOCUMENT_CHARS = 2 ** 20   # bound of the JSON document (characters)
MAX_MEMBERS = 2 ** 16          # bound of the archive's entries
MAX_DEFLATE_RATIO = 1100       # deflate cannot expand data more than 1032 times
MAX_NAME = 512
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DOCUMENT_KEYS = {"format", "version", "class", "config", "compile", "rng", "training"}
LOSSES = {cls.__name__: cls for cls in (
    losses.CategoricalCrossentropy, losses.SparseCategoricalCrossentropy,
    losses.BinaryCrossentropy, losses.MeanSquaredError, losses.MeanAbsoluteError)}
BIT_GENERATORS = {cls.__name__: cls for cls in (
    np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox,
    np.random.SFC64)}
# a state_dict name: dotted parts of word characters and dashes (no path separators, no "..")
_NAME = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_MODELS = {}


def register_model(cls):
    """Let ``load_model`` build models of class ``cls`` (by its name, with ``from_config``)."""
    _MODELS[cls.__name__] = cls
    return cls


# writing ------------------------------------------------------------------------------------
def _new_file_mode():
    """The mode ``open()`` gives a new file: 0o666 without the process's umask."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write):
    """Write a file through ``write(binary_file)`` so that ``path`` holds either its previous
    content or the complete new one: a temporary file in the same folder, flushed and
    fsync'ed, then ``os.replace``'d over ``path`` (and the folder fsync'ed). Returns ``path``
    as a str. The temporary file is removed if anything fails before the rename."""
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: the folder {folder!r} of {path!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path!r} is a folder")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    return path


def _check_finite(arrays, what):
    for key, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{what}: {key} holds NaN or inf; not saved (the previous file, if "
                             "any, is kept)")


def _check_names(weights):
    for key in weights:
        if not _NAME.fullmatch(key) or len(key) > MAX_NAME:
            raise ValueError(f"save: the parameter name {key!r} cannot be saved; name layers "
                             "with letters, digits, '_' and '-' only")


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def _model_class_name(model):
    name = type(model).__name__
    if _MODELS.get(name) is not type(model):
        raise TypeError(f"model: expected one of {sorted(_MODELS)}, got {name}")
    return name


def _rng_states(model):
    """``{"states": [...], "owners": {module name: index}}``: the state of each distinct random
    generator of the model and, per module name ('' for the model), the index of its own."""
    states, owners, index = [], {}, {}
    for name, module in model.named_modules():
        rng = module.__dict__.get("rng")
        if not isinstance(rng, np.random.Generator):
            continue
        if id(rng) not in index:
            index[id(rng)] = len(states)
            states.append(_jsonable(rng.bit_generator.state))
        owners[name] = index[id(rng)]
    return {"states": states, "owners": owners}


def _loss_spec(loss):
    if loss is None:
        return None
    if LOSSES.get(type(loss).__name__) is not type(loss):
        warnings.warn(f"save: the loss {type(loss).__name__} is not one of rnnfast.losses; the "
                      "model is saved without its compile settings", UserWarning, stacklevel=5)
        return False
    return {"class": type(loss).__name__, "from_logits": getattr(loss, "from_logits", None)}


def _metric_names(specs):
    metrics = [m for m in specs if isinstance(m, str)]
    if len(metrics) != len(specs):
        warnings.warn("save: metrics given as functions are not saved", UserWarning,
                      stacklevel=5)
    return metrics


def _compile_config(model, params):
    """The compile settings as data: one ``loss`` and ``metrics`` for a Sequential; for a
    functional Model (``multi_output_config``) a list of each per output and
    ``loss_weights``."""
    heads = model._heads
    if not heads:
        return None, {}
    specs = [_loss_spec(h.loss) for h in heads]
    if any(spec is False for spec in specs):
        return None, {}
    metrics = [_metric_names(h.metric_specs) for h in heads]
    opt_config, arrays = (None, {})
    if model.optimizer is not None:
        opt_config, arrays = optimizers_mod.get_config(model.optimizer, params)
    if opt_config is None and model.optimizer_name is None:
        warnings.warn("save: the optimizer is neither one of rnnfast.optim's nor given by name; "
                      "load_model compiles the model with 'rmsprop'", UserWarning, stacklevel=4)
    config = {"loss": specs[0], "metrics": metrics[0], "clip": dict(model.clip),
              "optimizer": opt_config, "optimizer_name": model.optimizer_name}
    if getattr(model, "multi_output_config", False):
        config.update(loss=specs, metrics=metrics, loss_weights=[h.weight for h in heads])
    return config, arrays


def _write_npz(path, arrays):
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def save_model(model, path, *, training=None):
    """Write ``model`` (configuration, weights, compile settings, optimiser state, random
    generators' states) to ``path``, exactly there and atomically; returns the path.
    ``training`` (a dict such as ``{"epoch": 3}``) is stored for ``restore_state``. Weights
    holding NaN or inf are refused (ValueError), keeping the previous file."""
    document = {"format": FORMAT, "version": VERSION, "class": _model_class_name(model),
                "config": model.get_config()}
    params = model.parameters()
    weights = model.state_dict()
    _check_names(weights)
    _check_finite(weights, "save")
    document["compile"], opt_arrays = _compile_config(model, params)
    _check_finite(opt_arrays, "save: optimizer state")
    document["rng"] = _rng_states(model)
    document["training"] = training
    arrays = {f"weights/{k}": v for k, v in weights.items()}
    arrays.update({f"optimizer/{k}": v for k, v in opt_arrays.items()})
    arrays[CONFIG_KEY] = np.array(json.dumps(document, allow_nan=False))
    return _write_npz(path, arrays)


def save_weights(model, path):
    """Write the model's ``state_dict`` (one array per parameter) to ``path``, exactly there and
    atomically; returns the path."""
    weights = model.state_dict()
    _check_names(weights)
    _check_finite(weights, "save_weights")
    return _write_npz(path, weights)


# reading ------------------------------------------------------------------------------------
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
                OSError, SyntaxError, RecursionError, MemoryError, TypeError, OverflowError,
                NotImplementedError, KeyError, IndexError)


def _check_member_name(name, where):
    if not name.endswith(".npy"):
        raise ValueError(f"{where}: unexpected member {name[:80]!r} (only .npy arrays)")
    key = name[:-4]
    parts = key.split("/")
    if len(key) > MAX_NAME or not all(parts) or any(p in (".", "..") for p in parts) or \
            "\\" in key or "\x00" in key or key.startswith("/"):
        raise ValueError(f"{where}: member name {name[:80]!r} is not an array name")
    return key


def _read_member(zf, info, where, dtype_ok):
    """The array stored in ``info``, its header checked against the bytes stored."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        try:  # NumPy's parser of the header's dict literal raises various errors
            shape, fortran, dtype = read_header(f)
        except Exception as exc:
            raise ValueError(f"bad .npy header ({type(exc).__name__}: {exc})") from None
        if not isinstance(shape, tuple) or any(not isinstance(d, int) or d < 0 for d in shape):
            raise ValueError(f"bad shape {shape!r}")
        if not dtype_ok(dtype):
            raise ValueError(f"unexpected dtype {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        stored = info.file_size - f.tell()
        if nbytes != stored:
            raise ValueError(f"the header declares shape {shape} of {dtype} ({nbytes:,} bytes) "
                             f"but {stored:,} bytes are stored")
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):
            raise ValueError("truncated or overlong data")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C", copy=True)


def _is_float(dtype):
    return dtype.newbyteorder("=") in FLOAT_DTYPES


def _is_document(dtype):
    return dtype.kind == "U" and dtype.itemsize <= 4 * MAX_DOCUMENT_CHARS


def read_arrays(path, max_bytes=None):
    """``{name: array}`` of an archive written by ``save_model`` / ``save_weights`` (without
    the model document), every entry checked (see the module's docstring); ValueError for
    anything malformed."""
    return _read_archive(path, max_bytes)[1]


def _read_archive(path, max_bytes):
    """``(document text or None, {name: array})`` of an archive, every entry checked."""
    max_bytes = MAX_BYTES if max_bytes is None else int(max_bytes)
    where = f"path: {os.fspath(path)!s}"
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        try:
            zf = zipfile.ZipFile(fp)
        except _READ_ERRORS as exc:
            raise ValueError(f"{where} is not a model file: not a valid archive "
                             f"({type(exc).__name__}: {exc})") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise ValueError(f"{where}: {len(infos)} entries (at most {MAX_MEMBERS})")
            keys, seen, total = [], set(), 0
            for info in infos:
                key = _check_member_name(info.filename, where)
                if key in seen:
                    raise ValueError(f"{where}: the entry {key!r} appears twice")
                if info.flag_bits & 0x1:
                    raise ValueError(f"{where}: the entry {key!r} is encrypted")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ValueError(f"{where}: the entry {key!r} uses compression method "
                                     f"{info.compress_type} (only stored or deflated)")
                if info.compress_size > size or (info.compress_type == zipfile.ZIP_STORED and
                                                 info.compress_size != info.file_size):
                    raise ValueError(f"{where}: the entry {key!r} has inconsistent sizes")
                if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
                    raise ValueError(f"{where}: the entry {key!r} would inflate "
                                     f"{info.compress_size:,} bytes to {info.file_size:,} "
                                     "(a zip bomb?)")
                total += info.file_size
                if total > max_bytes:
                    raise ValueError(f"{where}: the arrays take more than max_bytes = "
                                     f"{max_bytes:,} bytes uncompressed; pass a larger "
                                     "max_bytes to load a file this large")
                keys.append(key)
                seen.add(key)
            arrays, text = {}, None
            for info, key in zip(infos, keys):
                is_doc = key == CONFIG_KEY
                try:
                    arr = _read_member(zf, info, where, _is_document if is_doc else _is_float)
                    if is_doc:
                        if arr.shape != ():
                            raise ValueError("expected a single string")
                        text = str(arr[()])
                    elif not np.all(np.isfinite(arr)):
                        raise ValueError("holds NaN or inf")
                except _READ_ERRORS as exc:
                    raise ValueError(f"{where}: entry {key!r}: {type(exc).__name__}: "
                                     f"{exc}") from None
                if not is_doc:
                    arrays[key] = arr
    return text, arrays


def _reject_constant(name):
    raise ValueError(f"the number {name} is not allowed")


def _parse_document(text, where):
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: the model document is not valid JSON "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{where}: the model document is not a JSON object")
    if document.get("format") != FORMAT:
        raise ValueError(f"{where}: not a model saved by rnnfast (format "
                         f"{str(document.get('format'))[:80]!r}, expected {FORMAT!r})")
    version = document.get("version")
    if version != VERSION or isinstance(version, bool):
        raise ValueError(f"{where}: unsupported model file version {str(version)[:40]} "
                         f"(this rnnfast reads version {VERSION})")
    if set(document) != DOCUMENT_KEYS:
        raise ValueError(f"{where}: the model document has keys {sorted(map(str, document))}, "
                         f"expected {sorted(DOCUMENT_KEYS)}")
    if not isinstance(document["class"], str) or document["class"] not in _MODELS:
        raise ValueError(f"{where}: unknown model class {str(document['class'])[:80]!r}; known: "
                         f"{sorted(_MODELS)}")
    training = document["training"]
    if training is not None and (not isinstance(training, dict) or set(training) != {"epoch"}
                                 or not _is_count(training["epoch"])):
        raise ValueError(f"{where}: training: expected null or {{'epoch': int >= 0}}")
    return document


def _is_count(value, maximum=2 ** 53):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _split_arrays(arrays, where):
    weights, opt = {}, {}
    for key, arr in arrays.items():
        head, _, rest = key.partition("/")
        if head == "weights" and _NAME.fullmatch(rest):
            weights[rest] = arr
        elif head == "optimizer" and re.fullmatch(r"(0|[1-9][0-9]{0,8})/[a-z_]{1,32}", rest):
            opt[rest] = arr
        else:
            raise ValueError(f"{where}: unexpected entry {key[:80]!r} (expected weights/<name> "
                             "and optimizer/<index>/<name>)")
    return weights, opt


def _load_weights_into(model, weights, where):
    own = dict(model.named_parameters())
    for name, p in own.items():
        if name in weights and weights[name].dtype != p.dtype:
            raise ValueError(f"{where}: weights/{name}: dtype {weights[name].dtype}, the layer's "
                             f"config says {p.dtype}")
    try:
        model.load_state_dict(weights)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: the weights do not fit the model's layers: {exc}") from None


def _rng_generators(saved, modules, where):
    """``{module name: Generator}`` from a ``_rng_states`` dict, checked."""
    if not isinstance(saved, dict) or set(saved) != {"states", "owners"} or \
            not isinstance(saved["states"], list) or not isinstance(saved["owners"], dict) or \
            len(saved["states"]) > 4096:
        raise ValueError(f"{where}: rng: expected {{'states': [...], 'owners': {{...}}}}")
    gens = []
    for i, state in enumerate(saved["states"]):
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if not isinstance(name, str) or name not in BIT_GENERATORS:
            raise ValueError(f"{where}: rng.states[{i}]: unknown bit generator "
                             f"{str(name)[:40]!r}; known: {sorted(BIT_GENERATORS)}")
        gen = np.random.Generator(BIT_GENERATORS[name]())
        try:
            gen.bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
            raise ValueError(f"{where}: rng.states[{i}]: not a {name} state ({exc})") from None
        gens.append(gen)
    owners = saved["owners"]
    expected = {name for name, m in modules.items()
                if isinstance(m.__dict__.get("rng"), np.random.Generator)}
    if set(owners) != expected:
        raise ValueError(f"{where}: rng.owners names {sorted(map(str, owners))[:20]}, the "
                         f"model's random generators are {sorted(expected)[:20]}")
    for name, index in owners.items():
        if not _is_count(index) or index >= len(gens):
            raise ValueError(f"{where}: rng.owners[{name!r}]: expected an index below "
                             f"{len(gens)}, got {str(index)[:40]}")
    return {name: gens[index] for name, index in owners.items()}


def _restore_rngs(model, saved, where):
    modules = dict(model.named_modules())
    for name, gen in _rng_generators(saved, modules, where).items():
        setattr(modules[name], "rng", gen)


def _loss_from_spec(spec, where):
    if not isinstance(spec, dict) or set(spec) != {"class", "from_logits"} or \
            not isinstance(spec["class"], str) or spec["class"] not in LOSSES:
        raise ValueError(f"{where}: expected {{'class': one of {sorted(LOSSES)}, "
                         "'from_logits': ...}")
    cls = LOSSES[spec["class"]]
    takes_logits = issubclass(cls, (losses.CategoricalCrossentropy,
                                    losses.SparseCategoricalCrossentropy,
                                    losses.BinaryCrossentropy))
    if takes_logits != isinstance(spec["from_logits"], bool) or \
            (not takes_logits and spec["from_logits"] is not None):
        raise ValueError(f"{where}.from_logits: expected "
                         f"{'true or false' if takes_logits else 'null'} for {cls.__name__}")
    return cls(from_logits=spec["from_logits"]) if takes_logits else cls()


def _metric_specs(metrics, where):
    if not isinstance(metrics, list) or len(metrics) > 64 or \
            not all(isinstance(m, str) and len(m) <= 64 for m in metrics):
        raise ValueError(f"{where}: expected a list of metric names")
    return metrics


def _compile_arguments(config, where, multi=False):
    """``(loss, metrics, loss_weights, clip, optimizer_name)`` of a compile config, checked;
    with ``multi`` (a functional Model's), ``loss`` and ``metrics`` are lists per output."""
    keys = {"loss", "metrics", "clip", "optimizer", "optimizer_name"}
    if multi:
        keys.add("loss_weights")
    if not isinstance(config, dict) or set(config) != keys:
        raise ValueError(f"{where}: compile: expected keys {sorted(keys)}")
    weights = None
    if multi:
        specs, metric_lists, weights = config["loss"], config["metrics"], config["loss_weights"]
        if not all(isinstance(v, list) and 1 <= len(v) <= 64 for v in (specs, metric_lists,
                                                                          weights)) or \
                not len(specs) == len(metric_lists) == len(weights):
            raise ValueError(f"{where}: compile: expected lists 'loss', 'metrics' and "
                             "'loss_weights' of 1 to 64 items, one per output")
        if not all(is_finite_number(w) and w >= 0 for w in weights):
            raise ValueError(f"{where}: compile.loss_weights: expected numbers >= 0")
        loss = [None if spec is None else _loss_from_spec(spec, f"{where}: compile.loss[{i}]")
                for i, spec in enumerate(specs)]
        metrics = [_metric_specs(m, f"{where}: compile.metrics[{i}]")
                   for i, m in enumerate(metric_lists)]
    else:
        loss = _loss_from_spec(config["loss"], f"{where}: compile.loss")
        metrics = _metric_specs(config["metrics"], f"{where}: compile.metrics")
    clip = config["clip"]
    clip_keys = {"clipnorm", "clipvalue", "global_clipnorm"}
    if not isinstance(clip, dict) or set(clip) != clip_keys or not all(
            v is None or is_finite_number(v) for v in clip.values()):
        raise ValueError(f"{where}: compile.clip: expected {sorted(clip_keys)} with numbers or "
                         "null")
    name = config["optimizer_name"]
    if name is not None and (not isinstance(name, str) or
                             name.lower() not in optimizers_mod.KERAS_DEFAULTS):
        raise ValueError(f"{where}: compile.optimizer_name: expected null or one of "
                         f"{sorted(optimizers_mod.KERAS_DEFAULTS)}, got {str(name)[:40]!r}")
    return loss, metrics, weights, clip, name


def _restore_compile(model, config, opt_arrays, where):
    if config is None:
        if opt_arrays:
            raise ValueError(f"{where}: optimizer arrays without compile settings")
        return
    loss, metrics, weights, clip, name = _compile_arguments(
        config, where, getattr(model, "multi_output_config", False))
    params = model.parameters()
    opt = None
    if config["optimizer"] is not None:
        opt = optimizers_mod.from_config(config["optimizer"], opt_arrays, params, where)
    elif opt_arrays:
        raise ValueError(f"{where}: optimizer arrays without an optimizer config")
    try:
        model.compile(optimizer=opt if opt is not None else name or "rmsprop", loss=loss,
                      metrics=metrics, loss_weights=weights, **clip)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: compile: {exc}") from None
    model.optimizer_name = name


def _read_model_file(path, max_bytes):
    where = f"path: {os.fspath(path)!s}"
    text, arrays = _read_archive(path, max_bytes)
    if text is None:
        raise ValueError(f"{where} is not a model saved by rnnfast (no {CONFIG_KEY})")
    document = _parse_document(text, where)
    weights, opt_arrays = _split_arrays(arrays, where)
    return where, document, weights, opt_arrays


def load_model(path, *, max_bytes=None):
    """The model written by ``save_model`` (compiled, with its optimiser state, when it was
    compiled), checked part by part as the module's docstring says; ``max_bytes`` bounds the
    file's uncompressed arrays (default 4 GiB)."""
    where, document, weights, opt_arrays = _read_model_file(path, max_bytes)
    cls = _MODELS[document["class"]]
    budget = sum(a.size for a in weights.values())
    with parameter_budget(budget, "the file's weights"):
        try:
            model = cls.from_config(document["config"])
        except (TypeError, ValueError, OverflowError, MemoryError) as exc:
            raise ValueError(f"{where}: config: {exc}") from None
        _load_weights_into(model, weights, where)
    _restore_rngs(model, document["rng"], where)
    _restore_compile(model, document["compile"], opt_arrays, where)
    return model


def restore_state(model, path, *, max_bytes=None):
    """Put the weights, optimiser state and random generators' states saved in ``path`` (by
    ``save_model``, from a model of the same configuration) into ``model`` in place; returns
    the file's ``training`` dict (None when it has none). Used to resume training."""
    where, document, weights, opt_arrays = _read_model_file(path, max_bytes)
    if document["class"] != type(model).__name__ or document["config"] != \
            json.loads(json.dumps(model.get_config())):
        raise ValueError(f"{where}: the file was written by a model of another configuration")
    _load_weights_into(model, weights, where)
    compile_config = document["compile"]
    if model.optimizer is not None and (compile_config is None or
                                        compile_config.get("optimizer") is None):
        warnings.warn(f"{where}: the file holds no optimizer state (its optimizer was not one "
                      "of rnnfast.optim's); the model's optimizer keeps its own state",
                      UserWarning, stacklevel=2)
    elif model.optimizer is not None:
        saved = optimizers_mod.from_config(compile_config["optimizer"], opt_arrays,
                                           model.parameters(), where)
        optimizers_mod.copy_state(saved, model.optimizer)
    _restore_rngs(model, document["rng"], where)
    return document["training"]


def load_weights(model, path, *, max_bytes=None):
    """Load parameters written by ``save_weights``, or the weights of a model file written by
    ``save_model`` (checked as ``load_model`` checks one), into ``model`` (which must have the
    same layers)."""
    where = f"path: {os.fspath(path)!s}"
    text, arrays = _read_archive(path, max_bytes)
    if text is not None:
        arrays = _split_arrays(arrays, where)[0]
    bad = [k for k in arrays if not _NAME.fullmatch(k)]
    if bad:
        raise ValueError(f"{where}: unexpected entry {bad[0][:80]!r}")
    _load_weights_into(model, arrays, where)
