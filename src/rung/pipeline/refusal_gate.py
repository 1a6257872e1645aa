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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rung.config import RefusalGateConfig
from rung.errors import ConfigError
from rung.evals.types import Case


@dataclass
class RefusalGate:
    """A fitted gate: refuse when P(refuse | request) >= threshold."""

    classifier: Any
    embedder: Any
    config: RefusalGateConfig
    examples: int
    to_refuse: int

    @classmethod
    def fit(cls, cases: Sequence[Case], embedder: Any, config: RefusalGateConfig,
            where: str = "refusal_gate.examples") -> RefusalGate:
        """Fit on the labelled cases (`should_refuse` true or false); both kinds are needed."""
        from sklearn.linear_model import LogisticRegression

        from rung.pipeline.retrieval.index import embed

        labelled = [c for c in cases if c.should_refuse is not None]
        refuse = sum(bool(c.should_refuse) for c in labelled)
        if refuse == 0 or refuse == len(labelled):
            raise ConfigError(f"{where}: the gate needs examples of both kinds, requests to refuse "
                              f"(should_refuse: true) and to answer (should_refuse: false); found "
                              f"{refuse} to refuse and {len(labelled) - refuse} to answer")
        x = embed(embedder, [c.question for c in labelled])
        y = np.asarray([bool(c.should_refuse) for c in labelled])
        clf = LogisticRegression(C=config.regularization, class_weight="balanced", max_iter=1000)
        clf.fit(x, y)
        return cls(clf, embedder, config, len(labelled), refuse)

    def probabilities(self, questions: Sequence[str]) -> np.ndarray:
        """P(refuse) for each request."""
        if not questions:
            return np.zeros(0, dtype=np.float32)
        from rung.pipeline.retrieval.index import embed

        return self.classifier.predict_proba(embed(self.embedder, list(questions)))[:, 1]

    def event(self, p: float) -> dict[str, Any]:
        """The trace event for one request."""
        return {"type": "refusal_gate", "p_refuse": round(float(p), 4),
                "threshold": self.config.threshold, "refused": bool(p >= self.config.threshold),
                "examples": self.examples}
