"""scikit-learn classifier families for the built-in objective (scikit-learn imported lazily).

Called by :mod:`rdhpo_hpc.training.builtin` when ``config["model"]`` (or the spec's ``model``)
names one of :data:`SKLEARN_FAMILIES`; the torch families ``mlp`` / ``cnn`` stay in builtin.py.
Every family trains on the same :class:`~rdhpo_hpc.training.datasets.Dataset` as the networks
(flat float32 features), on the worker's CPU with ``num_threads`` threads, and reports the same
metrics through ``ctx.report(step, value, val_accuracy=..., val_loss=...)``:

* ``val_loss``     mean natural-log loss of the predicted class probabilities (probabilities
  clipped at 1e-15, like :func:`sklearn.metrics.log_loss`), the same quantity as the networks'
  cross-entropy;
* ``val_accuracy`` and ``val_error = 1 - val_accuracy``.

Hyper-parameters (a missing one takes the default shown; a bad value raises ConfigError quoting
key and value):

=====================  =========================================================================
family                 hyper-parameters (defaults)
=====================  =========================================================================
svm                    C (1.0), gamma (scale | auto | number > 0; "scale"), kernel (rbf | linear
                       | poly | sigmoid; rbf), degree (3, poly only)
random_forest          n_estimators (100), max_depth (0 or None = unlimited), min_samples_leaf
                       (1), max_features (sqrt | log2 | all | fraction in (0, 1]; sqrt)
gradient_boosting      learning_rate (0.1), max_iter (100), max_depth (0 or None = unlimited),
                       max_leaf_nodes (31), min_samples_leaf (20), l2_regularization (0.0)
logistic_regression    C (1.0), penalty (l2 | none; l2), max_iter (200)
=====================  =========================================================================

Budget (``ctx.budget``, the fidelity a multi-fidelity scheduler hands out):

* ``random_forest``: the number of trees (overrides ``n_estimators``).  The forest grows with
  ``warm_start`` and reports at about ten evenly spaced tree counts and at the last one
  (``step`` = trees so far), so a scheduler can stop it early.
* ``gradient_boosting``: the number of boosting iterations (overrides ``max_iter``), grown with
  ``warm_start`` and reported like the forest (``step`` = iterations so far).  Internal early
  stopping is off so that the budget means what it says.
* ``svm``, ``logistic_regression``: single-fidelity with ``budget_kind: epochs`` — the budget is
  ignored, the model is fitted once and reports once, at ``step`` = the budget (1 without one).
* ``budget_kind: data_fraction``: every family trains on the same nested training subset the
  networks use (``budget`` in (0, 1]); the tree families then use ``n_estimators`` / ``max_iter``.

SVM probabilities: ``SVC(probability=False)`` (no Platt scaling, whose internal 5-fold fit makes
it about 5x slower); the class probabilities are the softmax of the one-vs-rest decision
function divided by a temperature.  The temperature is fitted (1-D log-loss minimisation) on a
held-out 20 % of the *training* data with an SVC fitted on the other 80 %; the final SVC is then
fitted on the whole training set.  The validation set is never used for fitting, so val_loss is
an honest estimate, comparable with the other families' log loss.

Checkpoints (``ctx.checkpoint_dir`` / ``ctx.checkpoint_from``): the tree families pickle their
estimator to ``<dir>/sk_model.pkl`` at the last step (and at the step where a scheduler stops
them) and continue growing from it when resumed with a larger budget.  The single-fidelity
families refit (they have nothing to resume).
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from ..errors import ConfigError, TrialPruned
from .. import validate
from .params import get_choice, get_float, get_int

SKLEARN_FAMILIES = ("svm", "random_forest", "gradient_boosting", "logistic_regression")
MULTI_FIDELITY = ("random_forest", "gradient_boosting")
SVM_KERNELS = ("rbf", "linear", "poly", "sigmoid")
PENALTIES = ("l2", "none")
MAX_FEATURES = ("sqrt", "log2", "all")
CKPT_NAME = "sk_model.pkl"
N_REPORTS = 10  # tree families report at about this many evenly spaced steps
EPS = 1e-15

# The hyper-parameters each family reads (besides "model").  Other keys in a config (the shared
# lr / batch_size of a conditional space, say) are ignored by a family that does not use them.
FAMILY_PARAMS: Dict[str, Tuple[str, ...]] = {
    "svm": ("C", "gamma", "kernel", "degree"),
    "random_forest": ("n_estimators", "max_depth", "min_samples_leaf", "max_features"),
    "gradient_boosting": (
        "learning_rate",
        "max_iter",
        "max_depth",
        "max_leaf_nodes",
        "min_samples_leaf",
        "l2_regularization",
    ),
    "logistic_regression": ("C", "penalty", "max_iter"),
}


# --------------------------------------------------------------------------- hyper-parameters


def _opt_depth(p: Mapping[str, Any], key: str = "max_depth") -> Optional[int]:
    """``None``, 0 or "none" = unlimited; otherwise an int >= 1."""
    v = p.get(key)
    if v is None or (isinstance(v, str) and v.lower() in ("none", "null")):
        return None
    if validate.is_real(v) and v == 0:
        return None
    return get_int(p, key, 1)


def _max_features(p: Mapping[str, Any]) -> Any:
    v = p.get("max_features", "sqrt")
    if v is None:
        return None
    if isinstance(v, str):
        s = get_choice(p, "max_features", "sqrt", MAX_FEATURES)
        return None if s == "all" else s
    f = get_float(p, "max_features", 1.0, 0.0, 1.0, lo_open=True)
    return f


def _gamma(p: Mapping[str, Any]) -> Any:
    v = p.get("gamma", "scale")
    if isinstance(v, str):
        return get_choice(p, "gamma", "scale", ("scale", "auto"))
    try:
        return get_float(p, "gamma", 1.0, 0.0, lo_open=True)
    except ConfigError:
        raise ConfigError(f"gamma: got {v!r}; allowed: scale, auto or a finite number > 0") from None


def family_settings(family: str, p: Mapping[str, Any]) -> Dict[str, Any]:
    """The validated hyper-parameters of ``family`` read from ``p`` (defaults filled in).

    Cheap (no scikit-learn import); raises ConfigError quoting the key and value.
    """
    if family == "svm":
        return {
            "C": get_float(p, "C", 1.0, 0.0, lo_open=True),
            "gamma": _gamma(p),
            "kernel": get_choice(p, "kernel", "rbf", SVM_KERNELS),
            "degree": get_int(p, "degree", 3),
        }
    if family == "random_forest":
        return {
            "n_estimators": get_int(p, "n_estimators", 100),
            "max_depth": _opt_depth(p),
            "min_samples_leaf": get_int(p, "min_samples_leaf", 1),
            "max_features": _max_features(p),
        }
    if family == "gradient_boosting":
        return {
            "learning_rate": get_float(p, "learning_rate", 0.1, 0.0, lo_open=True),
            "max_iter": get_int(p, "max_iter", 100),
            "max_depth": _opt_depth(p),
            "max_leaf_nodes": get_int(p, "max_leaf_nodes", 31, lo=2),
            "min_samples_leaf": get_int(p, "min_samples_leaf", 20),
            "l2_regularization": get_float(p, "l2_regularization", 0.0),
        }
    if family == "logistic_regression":
        return {
            "C": get_float(p, "C", 1.0, 0.0, lo_open=True),
            "penalty": get_choice(p, "penalty", "l2", PENALTIES),
            "max_iter": get_int(p, "max_iter", 200),
        }
    raise ConfigError(f"model: got {family!r}; allowed: {', '.join(SKLEARN_FAMILIES)}")


# --------------------------------------------------------------------------- metrics


def _full_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Columns of ``proba`` (one per fitted class) placed at their label index; rows renormalised."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=np.int64)] = proba
    s = out.sum(1, keepdims=True)
    s[s <= 0] = 1.0
    return out / s


def proba_metrics(proba: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """(log loss, accuracy) of class probabilities ``proba`` (n, n_classes) for labels ``y``."""
    p = np.clip(proba[np.arange(len(y)), y], EPS, 1.0)
    return float(-np.log(p).mean()), float((proba.argmax(1) == y).mean())


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _fit_temperature(scores: np.ndarray, y_cols: np.ndarray) -> float:
    """Scale ``s`` minimising the log loss of softmax(scores * s) (golden-section on log s)."""

    def loss(log_s: float) -> float:
        p = _softmax(scores * math.exp(log_s))
        return float(-np.log(np.clip(p[np.arange(len(y_cols)), y_cols], EPS, 1.0)).mean())

    lo, hi = math.log(1e-3), math.log(1e3)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(b)
    return math.exp((lo + hi) / 2)


# --------------------------------------------------------------------------- training


def train_family(
    family: str,
    p: Mapping[str, Any],
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    budget_units: Optional[int],
    report: Callable[[int, float, float], None],
    seed: int,
    num_threads: int,
    checkpoint_dir: Optional[str] = None,
    checkpoint_from: Optional[str] = None,
    trial_id: Any = None,
) -> Tuple[float, float]:
    """Fit ``family`` and call ``report(step, val_loss, val_accuracy)``; return the last (loss, acc).

    ``budget_units``: trees / boosting iterations for the tree families (None: their
    ``n_estimators`` / ``max_iter``), the reported step for the single-fidelity ones (None: 1).
    """
    settings = family_settings(family, p)
    if len(np.unique(y_tr)) < 2:
        raise ConfigError(f"model {family!r}: the training data holds a single class; a classifier needs at least two")
    from threadpoolctl import threadpool_limits

    limit = num_threads if num_threads > 0 else None
    seed = int(seed) % (2**31)
    with threadpool_limits(limits=limit), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        try:
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", category=ConvergenceWarning)
        except ImportError:  # pragma: no cover
            pass
        if family in MULTI_FIDELITY:
            return _train_trees(
                family,
                settings,
                x_tr,
                y_tr,
                x_va,
                y_va,
                n_classes,
                budget_units,
                report,
                seed,
                num_threads,
                checkpoint_dir,
                checkpoint_from,
                trial_id,
            )
        if family == "svm":
            proba = _svm_proba(settings, x_tr, y_tr, x_va, n_classes, seed)
        else:
            proba = _logreg_proba(settings, x_tr, y_tr, x_va, n_classes, seed)
    val_loss, val_acc = proba_metrics(proba, y_va)
    report(budget_units or 1, val_loss, val_acc)
    return val_loss, val_acc


def _svm_proba(
    s: Mapping[str, Any], x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, n_classes: int, seed: int
) -> np.ndarray:
    from sklearn.svm import SVC

    def make() -> Any:
        return SVC(
            C=s["C"],
            gamma=s["gamma"],
            kernel=s["kernel"],
            degree=s["degree"],
            decision_function_shape="ovr",
            random_state=seed,
        )  # probability=False (default)

    def scores(model: Any, x: np.ndarray) -> np.ndarray:
        d = model.decision_function(x)
        if d.ndim == 1:  # two classes: one margin; make it two columns
            d = np.stack([-d / 2, d / 2], axis=1)
        return d

    # temperature from an 80/20 split of the training data (stratified when every class has 2+)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y_tr))
    n_hold = max(1, int(round(0.2 * len(y_tr))))
    hold, fit = order[:n_hold], order[n_hold:]
    temperature = 1.0
    if len(np.unique(y_tr[fit])) >= 2 and len(fit) >= 2:
        m = make().fit(x_tr[fit], y_tr[fit])
        known = np.isin(y_tr[hold], m.classes_)
        if known.any():
            col = np.searchsorted(m.classes_, y_tr[hold][known])
            temperature = _fit_temperature(scores(m, x_tr[hold][known]), col)
    model = make().fit(x_tr, y_tr)
    return _full_proba(_softmax(scores(model, x_va) * temperature), model.classes_, n_classes)


def _logreg_proba(
    s: Mapping[str, Any], x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, n_classes: int, seed: int
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    # penalty "none" = C -> infinity (works across scikit-learn versions; 'penalty' is
    # deprecated from 1.8 on).  l2 is the default penalty.
    c = math.inf if s["penalty"] == "none" else s["C"]
    model = LogisticRegression(C=c, max_iter=s["max_iter"], random_state=seed)
    model.fit(x_tr, y_tr)
    return _full_proba(model.predict_proba(x_va), model.classes_, n_classes)


def report_steps(start: int, total: int) -> list:
    """The tree counts / iterations after which a tree family reports: about N_REPORTS evenly
    spaced multiples of ``ceil(total / N_REPORTS)`` above ``start``, and always ``total``."""
    every = max(1, math.ceil(total / N_REPORTS))
    steps = [k for k in range(every, total, every) if k > start]
    return steps + [total] if total > start else [total]


def _train_trees(
    family: str,
    s: Mapping[str, Any],
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    budget_units: Optional[int],
    report: Callable[[int, float, float], None],
    seed: int,
    num_threads: int,
    ckpt_dir: Optional[str],
    ckpt_from: Optional[str],
    trial_id: Any,
) -> Tuple[float, float]:
    total = (
        budget_units
        if budget_units is not None
        else (s["n_estimators"] if family == "random_forest" else s["max_iter"])
    )
    model = _load_checkpoint(ckpt_from, family) if ckpt_from else None
    if model is None:
        if family == "random_forest":
            from sklearn.ensemble import RandomForestClassifier

            model = RandomForestClassifier(
                n_estimators=0,
                warm_start=True,
                max_depth=s["max_depth"],
                min_samples_leaf=s["min_samples_leaf"],
                max_features=s["max_features"],
                n_jobs=max(1, num_threads),
                random_state=seed,
            )
        else:
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(
                learning_rate=s["learning_rate"],
                max_iter=1,
                max_depth=s["max_depth"],
                max_leaf_nodes=s["max_leaf_nodes"],
                min_samples_leaf=s["min_samples_leaf"],
                l2_regularization=s["l2_regularization"],
                early_stopping=False,
                warm_start=True,
                random_state=seed,
            )
    else:  # resumed: the new config's (non-structural) hyper-parameters win where they can
        if family == "gradient_boosting":
            model.set_params(learning_rate=s["learning_rate"], l2_regularization=s["l2_regularization"])
    done = _grown(model, family)
    x_va = np.ascontiguousarray(x_va, dtype=np.float32)  # what the trees predict on unchecked
    prob_sum = None  # random forest: running sum of the trees' probabilities (O(trees) evaluation)
    n_summed = 0
    loss = acc = float("nan")
    for step in report_steps(done, total):
        if step > done:
            if family == "random_forest":
                model.set_params(n_estimators=step)
            else:
                model.set_params(max_iter=step)
            model.fit(x_tr, y_tr)
            done = step
        if family == "random_forest":
            if prob_sum is None:
                prob_sum = np.zeros((len(y_va), len(model.classes_)))
            for tree in model.estimators_[n_summed:done]:
                prob_sum += tree.predict_proba(x_va, check_input=False)
            n_summed = done
            proba = prob_sum / max(done, 1)
        else:
            proba = model.predict_proba(x_va)
        loss, acc = proba_metrics(_full_proba(proba, model.classes_, n_classes), y_va)
        last = step >= total
        if last and ckpt_dir:
            _save_checkpoint(ckpt_dir, model, family, done, trial_id)
        try:
            report(done, loss, acc)
        except TrialPruned:
            if ckpt_dir and not last:
                _save_checkpoint(ckpt_dir, model, family, done, trial_id)
            raise
    return loss, acc


def _grown(model: Any, family: str) -> int:
    if family == "random_forest":
        return len(getattr(model, "estimators_", []))
    return int(getattr(model, "n_iter_", 0) or 0)


def _save_checkpoint(ckpt_dir: str, model: Any, family: str, step: int, trial_id: Any) -> None:
    """``<ckpt_dir>/sk_model.pkl`` written atomically (temp file + os.replace)."""
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, CKPT_NAME)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        pickle.dump(
            {"family": family, "step": int(step), "trial_id": trial_id, "model": model},
            fh,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    os.replace(tmp, path)


def _load_checkpoint(ckpt_from: str, family: str) -> Any:
    """The pickled estimator in ``ckpt_from`` (None and a warning if absent).  These files are
    written by this module into the study's own checkpoint directory; never point
    ``checkpoint_from`` at untrusted files (pickle)."""
    path = os.path.join(ckpt_from, CKPT_NAME)
    if not os.path.isfile(path):
        warnings.warn(f"checkpoint {path!r} not found; training from scratch", RuntimeWarning, stacklevel=1)
        return None
    with open(path, "rb") as fh:
        state = pickle.load(fh)
    if state.get("family") != family:
        raise RuntimeError(
            f"checkpoint {path!r} holds a {state.get('family')!r} model; this trial's model is {family!r}"
        )
    return state["model"]


__all__ = [
    "SKLEARN_FAMILIES",
    "MULTI_FIDELITY",
    "FAMILY_PARAMS",
    "family_settings",
    "train_family",
    "proba_metrics",
    "report_steps",
]
