"""Typed errors. The library raises these; the CLI prints their message on one line."""

from __future__ import annotations


class RungError(Exception):
    """Base class of every error rung raises on purpose (bad input, missing file, ...)."""


class ConfigError(RungError):
    """rung.yaml (or a file it points at) is malformed."""


class ModelError(RungError):
    """A model could not be loaded or failed to generate."""


class ModelNotFoundError(ModelError):
    """The model file or folder does not exist."""


class AdapterError(ModelError):
    """An adapter is missing, for another base model, or matches no module."""


class EndpointError(ModelError):
    """An OpenAI-compatible endpoint is unreachable or answered with an error."""


class SuiteError(RungError):
    """A suite file has bad cases (the message names file, line and field)."""


class StoreError(RungError):
    """The run store could not be read or written, or a run id is unknown."""


class NoStoreError(StoreError):
    """A command that only reads runs found no run store (nothing evaluated yet)."""


class ScorerError(RungError):
    """A scorer is misconfigured (unknown name, bad parameters)."""


class OutputError(RungError):
    """A file or folder rung was told to write cannot be written (exists as the wrong kind,
    permission denied)."""


class DataError(RungError):
    """A training-data file is malformed, or a dataset failed a blocking check."""


class TrainingError(RungError):
    """A tuning job cannot be planned, started, resumed or finished (no dataset, a finished job,
    a metric the dev split does not measure, a failed `accelerate launch`, ...)."""


class ArtifactError(RungError):
    """A trained artifact (adapter or weights folder, its rung-lineage.json) is missing,
    malformed or cannot be written as asked."""


def did_you_mean(word: str, options: object) -> str:
    """' (did you mean 'x'?)' for the closest of `options` to `word`, or '' when none is close."""
    import difflib

    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)  # type: ignore[attr-defined]
    return f" (did you mean {match[0]!r}?)" if match else ""
