"""Build the Model a rung.yaml entry describes: `local` (transformers) or `openai` (an
OpenAI-compatible endpoint), wrapped in the persistent response cache when one is given."""

from __future__ import annotations

from pathlib import Path

from rung.config import ModelConfig, RungConfig
from rung.errors import ConfigError, ModelNotFoundError, did_you_mean
from rung.models.base import Model
from rung.models.cache import CachedModel, ResponseCache


def load_model(cfg: ModelConfig, *, root: Path, cache_path: Path | None = None) -> Model:
    """The model of one `models:` entry; relative paths resolve against `root` (the folder of
    rung.yaml). With `cache_path`, answers are cached in that SQLite file."""
    model: Model
    if cfg.backend == "local":
        from rung.models.local import LocalModel  # heavy (torch, transformers): imported on use

        model = LocalModel.from_config(cfg, root)
    elif cfg.backend == "openai":
        from rung.models.openai import OpenAIModel

        model = OpenAIModel.from_config(cfg)
    else:  # pragma: no cover - ModelConfig only admits the two backends above
        raise ConfigError(f"unknown model backend {cfg.backend!r}; expected local or openai")
    if cache_path is not None:
        model = CachedModel(model, ResponseCache(cache_path))
    return model


def load_project_model(config: RungConfig, name: str, use_cache: bool = True) -> Model:
    """The model named `name` in rung.yaml's `models:`, cached in `paths.cache` unless
    use_cache is False."""
    if name not in config.models:
        raise ConfigError(
            f"{config.source or 'rung.yaml'}: models: no model named {name!r}"
            f"{did_you_mean(name, config.models)}; models are {', '.join(sorted(config.models))}")
    cache_path = config.resolve(config.paths.cache) if use_cache else None
    try:
        return load_model(config.models[name], root=config.root, cache_path=cache_path)
    except ModelNotFoundError as e:  # name the key of rung.yaml that points there
        raise ModelNotFoundError(f"{config.where('models', name, 'path')}: {e}") from None
