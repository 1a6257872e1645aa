"""A refusal gate learned from the project's labelled requests, checked before the model runs.

Small models follow refusal rules in a prompt poorly (SmolLM2-135M refuses a third of the
requests the example says to refuse, and asked "should this be refused? yes/no" it ranks them no
better than chance). The labels already exist: every case with `should_refuse: true` or `false`
in a suite is an example. The gate embeds each example's request with the project's sentence
embedder and fits a class-balanced logistic regression; a request whose probability of "refuse"
is `threshold` or more gets the gate's refusal without a model call.

Measured on the bundled example: fitted on the 231 train cases (39 to refuse), on the 206
held-out eval cases the gate's ROC AUC is 0.95; at threshold 0.5 it catches 73% of the requests
to refuse and wrongly refuses 10 of 172 (5.8%).

Keep the examples apart from the suites you evaluate on: a gate fitted on its own eval cases
scores itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rung.config import RefusalGateConfig
from rung.core import Case
from rung.errors import ConfigError


@dataclass
class RefusalGate:
    """Refuse when P(refuse | request) >= threshold. The examples are checked when the gate is
    made; the embedder is loaded and the classifier fitted on first use, so a candidate whose
    runs are all reused never pays for it."""

    cases: list[Case]
    embedder_factory: Callable[[], Any]
    config: RefusalGateConfig
    _classifier: Any = field(default=None, repr=False)
    _embedder: Any = field(default=None, repr=False)

    @classmethod
    def from_cases(cls, cases: Sequence[Case], embedder_factory: Callable[[], Any],
                   config: RefusalGateConfig, where: str = "refusal_gate.examples") -> RefusalGate:
        """A gate over the labelled cases (`should_refuse` true or false); both kinds are needed."""
        labelled = [c for c in cases if c.should_refuse is not None]
        refuse = sum(bool(c.should_refuse) for c in labelled)
        if refuse == 0 or refuse == len(labelled):
            raise ConfigError(f"{where}: the gate needs examples of both kinds, requests to refuse "
                              f"(should_refuse: true) and to answer (should_refuse: false); found "
                              f"{refuse} to refuse and {len(labelled) - refuse} to answer")
        return cls(labelled, embedder_factory, config)

    @property
    def examples(self) -> int:
        return len(self.cases)

    @property
    def to_refuse(self) -> int:
        return sum(bool(c.should_refuse) for c in self.cases)

    def fit(self) -> RefusalGate:
        """Embed the examples and fit the classifier (once)."""
        if self._classifier is None:
            from sklearn.linear_model import LogisticRegression

            from rung.pipeline.retrieval.index import embed

            self._embedder = self.embedder_factory()
            x = embed(self._embedder, [c.question for c in self.cases])
            y = np.asarray([bool(c.should_refuse) for c in self.cases])
            clf = LogisticRegression(C=self.config.regularization, class_weight="balanced", max_iter=1000)
            self._classifier = clf.fit(x, y)
        return self

    def probabilities(self, questions: Sequence[str]) -> np.ndarray:
        """P(refuse) for each request."""
        if not questions:
            return np.zeros(0, dtype=np.float32)
        from rung.pipeline.retrieval.index import embed

        self.fit()
        return self._classifier.predict_proba(embed(self._embedder, list(questions)))[:, 1]

    def event(self, p: float) -> dict[str, Any]:
        """The trace event for one request."""
        return {"type": "refusal_gate", "p_refuse": round(float(p), 4),
                "threshold": self.config.threshold, "refused": bool(p >= self.config.threshold),
                "examples": self.examples}
