"""Built-in and user datasets, loaded once per process and reused across trials.

Called by :mod:`rdhpo_hpc.training.builtin` (inside the worker, per trial) and by rank 0 through
:meth:`BuiltinObjective.check_data` to fail early on an unreadable dataset.  No torch import here.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import numpy as np

from ..errors import ConfigError

BUILTIN_DATASETS = ("digits", "mnist1d")
FILE_SUFFIXES = (".npz", ".h5", ".hdf5")


@dataclass
class Dataset:
    """An in-memory classification dataset.

    ``x_*`` are float32 of shape ``(n, prod(input_shape))`` (flat); ``y_*`` are int64 labels in
    ``[0, n_classes)``.  ``image_shape`` is how a CNN views one sample: ``(C, L)`` for a 1-D signal,
    ``(C, H, W)`` for an image.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    input_shape: Tuple[int, ...]
    image_shape: Tuple[int, ...]
    # filled by builtin.py: {device: (x_tr, y_tr, x_val, y_val) tensors, ("order", seed): subset order}
    tensors: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])


_CACHE: Dict[Tuple[Any, ...], Dataset] = {}


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """Load ``spec`` ("digits", "mnist1d", or a ``.npz`` / ``.h5`` / ``.hdf5`` path), cached per process.

    ``seed`` fixes the train/val split where the source has none (digits, files with only x, y).
    Raises :class:`ConfigError` naming the dataset, path or key on any user error.
    """
    key = _cache_key(spec, seed)
    ds = _CACHE.get(key)
    if ds is None:
        if spec == "digits":
            ds = _load_digits(int(seed))
        elif spec == "mnist1d":
            ds = _load_mnist1d()
        else:
            ds = _load_file(spec, key[0], int(seed))
        _CACHE[key] = ds
    return ds


def _cache_key(spec: Any, seed: int) -> Tuple[Any, ...]:
    if not isinstance(spec, str) or not spec:
        raise ConfigError(
            f"dataset: expected a name {list(BUILTIN_DATASETS)} or a path ending "
            f"{'/'.join(FILE_SUFFIXES)}, got {spec!r}"
        )
    if spec in BUILTIN_DATASETS:
        return (spec, int(seed))
    if spec.lower().endswith(FILE_SUFFIXES):
        path = os.path.abspath(os.path.expanduser(spec))
        if not os.path.isfile(path):
            raise ConfigError(f"dataset: file {spec!r} does not exist (resolved to {path!r})")
        st = os.stat(path)
        return (path, int(seed), st.st_mtime_ns, st.st_size)
    raise ConfigError(
        f"dataset: unknown dataset {spec!r}; allowed: {', '.join(BUILTIN_DATASETS)} "
        f"or a file path ending {', '.join(FILE_SUFFIXES)}"
    )


ARRAY_FIELDS = ("x_train", "y_train", "x_val", "y_val")


def export_dataset(spec: str, seed: int = 0) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Load ``spec`` and split it into its arrays and a small picklable description.

    Used at start-up by the one rank per node that reads the data for the others
    (:meth:`rdhpo_hpc.comm.mpi.MPITransport.share_arrays`)."""
    ds = load_dataset(spec, seed)
    meta = {"name": ds.name, "n_classes": ds.n_classes, "input_shape": ds.input_shape, "image_shape": ds.image_shape}
    return {f: getattr(ds, f) for f in ARRAY_FIELDS}, meta


def adopt_dataset(spec: str, seed: int, arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Dataset:
    """Put arrays read by another rank (an MPI broadcast at start-up) into this process's cache,
    so that ``load_dataset(spec, seed)`` returns them without reading the file."""
    ds = Dataset(
        x_train=arrays["x_train"], y_train=arrays["y_train"], x_val=arrays["x_val"], y_val=arrays["y_val"], **meta
    )
    _CACHE[_cache_key(spec, seed)] = ds
    return ds


def check_dataset_spec(spec: Any) -> None:
    """Cheap check (no loading) used when an objective is built on rank 0."""
    if isinstance(spec, str) and spec in BUILTIN_DATASETS:
        return
    if isinstance(spec, str) and spec.lower().endswith(FILE_SUFFIXES):
        if not os.path.isfile(os.path.expanduser(spec)):
            raise ConfigError(f"dataset: file {spec!r} does not exist")
        return
    raise ConfigError(
        f"dataset: unknown dataset {spec!r}; allowed: {', '.join(BUILTIN_DATASETS)} "
        f"or a file path ending {', '.join(FILE_SUFFIXES)}"
    )


def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x_tr, x_va, y_tr, y_va = train_test_split(d.data, d.target, test_size=0.2, stratify=d.target, random_state=seed)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0
    return _make("digits", (x_tr - mean) / std, y_tr, (x_va - mean) / std, y_va, (1, 8, 8))


def _load_mnist1d() -> Dataset:
    # make_dataset reseeds the global random / np.random: keep the caller's streams untouched.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # never get_dataset(): it downloads

        d = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return _make("mnist1d", d["x"], d["y"], d["x_test"], d["y_test"], (1, d["x"].shape[1]))


def _load_file(spec: str, path: str, seed: int) -> Dataset:
    arrays = _read_arrays(spec, path)
    if all(k in arrays for k in ("x_train", "y_train", "x_val", "y_val")):
        x_tr, y_tr, x_va, y_va = (arrays[k] for k in ("x_train", "y_train", "x_val", "y_val"))
    elif "x" in arrays and "y" in arrays:
        x, y = arrays["x"], arrays["y"]
        if len(x) != len(y) or len(x) < 2:
            raise ConfigError(
                f"dataset {spec!r}: 'x' has {len(x)} rows and 'y' {len(y)}; they must match and hold at least 2 samples"
            )
        perm = np.random.default_rng(seed).permutation(len(x))
        n_tr = min(len(x) - 1, max(1, int(round(0.8 * len(x)))))
        x_tr, y_tr, x_va, y_va = x[perm[:n_tr]], y[perm[:n_tr]], x[perm[n_tr:]], y[perm[n_tr:]]
    else:
        raise ConfigError(f"dataset {spec!r}: missing arrays; need {EXPECTED_ARRAYS}, found {sorted(arrays)}")
    for xn, yn, x, y in (("x_train", "y_train", x_tr, y_tr), ("x_val", "y_val", x_va, y_va)):
        if len(x) == 0:
            raise ConfigError(f"dataset {spec!r}: {xn} is empty")
        if len(x) != len(y):
            raise ConfigError(f"dataset {spec!r}: {xn} has {len(x)} rows but {yn} has {len(y)}")
        if x.ndim < 2 or x.ndim > 4:
            raise ConfigError(
                f"dataset {spec!r}: {xn} has shape {x.shape}; allowed: (n, features), "
                "(n, channels, length) or (n, channels, height, width)"
            )
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(
                f"dataset {spec!r}: {yn} must be 1-D integer class labels, got shape {y.shape} dtype {y.dtype}"
            )
    if x_tr.shape[1:] != x_va.shape[1:]:
        raise ConfigError(
            f"dataset {spec!r}: x_train samples {x_tr.shape[1:]} and x_val samples {x_va.shape[1:]} differ"
        )
    image_shape = (1, x_tr.shape[1]) if x_tr.ndim == 2 else tuple(int(s) for s in x_tr.shape[1:])
    return _make(os.path.basename(path), x_tr, y_tr, x_va, y_va, image_shape)


EXPECTED_ARRAYS = "x_train, y_train, x_val, y_val (or x, y for an 80/20 split)"


def _read_arrays(spec: str, path: str) -> Dict[str, np.ndarray]:
    npz = path.lower().endswith(".npz")
    where = "" if os.path.abspath(spec) == path else f" (file {path!r})"
    try:
        if npz:
            import zipfile

            if not zipfile.is_zipfile(path):
                raise ConfigError(
                    f"dataset {spec!r}{where} is not a .npz archive (the zip file "
                    f"numpy.savez writes); expected one holding arrays {EXPECTED_ARRAYS}"
                )
            with np.load(path, allow_pickle=False) as z:
                return {k: np.asarray(z[k]) for k in z.files}
        from ..storage.hdf5 import is_hdf5_file, read_arrays

        if not is_hdf5_file(path):
            raise ConfigError(
                f"dataset {spec!r}{where} is not an HDF5 file; expected one "
                f"holding arrays {EXPECTED_ARRAYS} as top-level datasets"
            )
        return read_arrays(path)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt / wrong format: reported as bad input
        raise ConfigError(
            f"dataset {spec!r}: cannot read file {path!r} ({type(e).__name__}: {e}); "
            f"expected a {'.npz archive' if npz else 'HDF5 file'} holding arrays {EXPECTED_ARRAYS}"
        ) from None


def _make(
    name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, image_shape: Tuple[int, ...]
) -> Dataset:
    x_tr = np.ascontiguousarray(x_tr, dtype=np.float32).reshape(len(x_tr), -1)
    x_va = np.ascontiguousarray(x_va, dtype=np.float32).reshape(len(x_va), -1)
    y_tr, y_va = np.asarray(y_tr, dtype=np.int64), np.asarray(y_va, dtype=np.int64)
    lo = min(int(y_tr.min()), int(y_va.min()))
    if lo < 0:
        raise ConfigError(f"dataset {name!r}: labels must be >= 0, found {lo}")
    n_classes = int(max(y_tr.max(), y_va.max())) + 1
    return Dataset(
        name=name,
        x_train=x_tr,
        y_train=y_tr,
        x_val=x_va,
        y_val=y_va,
        n_classes=n_classes,
        input_shape=(int(x_tr.shape[1]),),
        image_shape=tuple(int(s) for s in image_shape),
    )


def clear_cache() -> None:
    """Forget every loaded dataset (tests)."""
    _CACHE.clear()
