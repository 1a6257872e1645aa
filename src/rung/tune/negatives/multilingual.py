"""`multilingual`: Spanish / French / German (rung.yaml `tune.data.languages`) variants.

English parents only (metadata `lang` or a "lang:xx" tag other than en are skipped). Each parent
gets `negatives_per_example` of the configured languages, drawn at random. Two methods; the
variant's metadata["translation"] says which one made it, and the card can count them:

- "model:<name>" (rung.yaml `tune.data.translator` names a model in `models`, loaded through
  rung.models.factory with the response cache): every user and assistant turn is translated by
  the model (greedy, one batched call), the system message stays as it is. A refusal target that
  starts with the project's refusal phrase gets the curated phrase of that language (below) and
  only its reason is translated, so refusals keep one fixed wording per language. Variants whose
  translation failed, was cut off, came back empty or lost a [source] citation are skipped and
  counted; structured (JSON) targets are skipped (translating them would break the schema).
  Quality is the translator's: nothing checks meaning.
- "template" (no translator): the curated table multilingual_templates.yaml, written for rung with
  its English source. It covers refusals only: a refusing parent (metadata should_refuse, or a
  target starting with the refusal phrase) whose metadata `refuse_kind`, `attack` or `intent`
  matches a category gets one of that category's questions in the other language (a same-kind
  question, NOT a translation of the parent's own question: metadata says which English source
  question it is) and the target "<refusal phrase> <category reason>" in that language. Only the
  system message of the parent is kept, and of its tags and metadata only the intent (the rest
  describes its own question). Answers that carry facts cannot come from a template:
  those parents, refusals without a matching category, and projects whose English refusal phrase
  differs from the table's are skipped and counted, never approximated.
"""

from __future__ import annotations

import functools
import json
import random
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from rung.config import RungConfig
from rung.core import Message
from rung.errors import ConfigError
from rung.models.base import GenerationParams, GenRequest, ProgressCallback
from rung.pipeline.retrieval.chunking import approx_tokens
from rung.tune.example import Example
from rung.tune.negatives._common import (
    cited_docs,
    count,
    derive,
    is_refusal,
    language,
    question,
    refusal_phrase,
    sample_parents,
    usable_parents,
)

NAME = "multilingual"
TEMPLATE_FILE = "multilingual_templates.yaml"
LANGUAGE_NAMES = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese",
                  "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish", "fi": "Finnish",
                  "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ar": "Arabic", "hi": "Hindi",
                  "tr": "Turkish", "cs": "Czech", "ro": "Romanian", "el": "Greek", "uk": "Ukrainian"}
TRANSLATE_SYSTEM = (
    "Translate the user's message from English into {language}. Keep product names, numbers, prices, "
    "dates, codes, e-mail addresses, web addresses and anything in square brackets exactly as written. "
    "Reply with the translation only, nothing else.")
_MATCH_KEYS = ("refuse_kind", "attack", "intent")


@dataclass(frozen=True)
class Category:
    name: str
    match: dict[str, tuple[str, ...]]
    reason: dict[str, str]
    questions: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Templates:
    refusal: dict[str, str]
    categories: tuple[Category, ...]

    def category_for(self, ex: Example) -> Category | None:
        for key in _MATCH_KEYS:
            value = ex.metadata.get(key)
            if value in (None, ""):
                continue
            for c in self.categories:
                accepted = c.match.get(key, ())
                if "*" in accepted or str(value) in accepted:
                    return c
        return None


@functools.lru_cache(maxsize=1)
def templates() -> Templates:
    """The curated table (multilingual_templates.yaml, next to this module)."""
    raw = yaml.safe_load(resources.files("rung.tune.negatives").joinpath(TEMPLATE_FILE).read_text("utf-8"))
    cats = tuple(
        Category(name, {k: tuple(str(x) for x in v) for k, v in body["match"].items()}, dict(body["reason"]),
                 tuple(dict(q) for q in body["questions"]))
        for name, body in raw["categories"].items())
    return Templates(dict(raw["refusal"]), cats)


def generate(examples: list[Example], *, config: RungConfig, rng: random.Random,
             skipped: Counter[str] | None = None, progress: ProgressCallback | None = None) -> list[Example]:
    """Multilingual variants of the examples (see the module docstring)."""
    data = config.tune.data
    table = templates()
    _check_languages(data.languages, translator=data.translator, table=table)
    parents = []
    for p in sample_parents(usable_parents(examples, skipped), data.negatives_fraction, rng):
        if language(p) != "en":
            count(skipped, "parent is not in English")
        else:
            parents.append(p)
    plan = [(p, lang) for p in parents
            for lang in rng.sample(data.languages, min(data.negatives_per_example, len(data.languages)))]
    if data.translator:
        return _translated(plan, config, table, skipped, progress)
    return _templated(plan, config, table, rng, skipped)


def _check_languages(langs: list[str], *, translator: str | None, table: Templates) -> None:
    where = "tune.data.languages"
    if not langs:
        raise ConfigError(f"{where}: empty; list the language codes to generate, e.g. [es, fr, de]")
    for lang in langs:
        if lang == "en":
            raise ConfigError(f"{where}: 'en' is the source language; list the target languages")
        if translator and lang not in LANGUAGE_NAMES:
            raise ConfigError(f"{where}: unknown language code {lang!r}; known: {', '.join(sorted(LANGUAGE_NAMES))}")
        if not translator and lang not in table.refusal:
            covered = ", ".join(k for k in table.refusal if k != "en")
            raise ConfigError(f"{where}: no curated template for {lang!r} (templates cover {covered}); "
                              f"set tune.data.translator to a model in `models` to translate instead")


# ---------------------------------------------------------------- templates

def _templated(plan: list[tuple[Example, str]], config: RungConfig, table: Templates, rng: random.Random,
               skipped: Counter[str] | None) -> list[Example]:
    phrase = refusal_phrase(config)
    phrase_ok = _norm(phrase) == _norm(table.refusal["en"])
    out = []
    for parent, lang in plan:
        if not is_refusal(parent, phrase):
            intent = parent.metadata.get("intent") or "(none)"
            count(skipped, f"template: intent {intent} has no template (its answer carries facts; set a translator)")
            continue
        if not phrase_ok:
            count(skipped, "template: the project's refusal phrase has no curated translation")
            continue
        cat = table.category_for(parent)
        if cat is None:
            count(skipped, "template: refusal of no known category (metadata refuse_kind / attack / intent)")
            continue
        q = cat.questions[rng.randrange(len(cat.questions))]
        target = f"{table.refusal[lang]} {cat.reason[lang]}"
        system = [dict(m) for m in parent.messages[:1] if m.get("role") == "system"]
        messages = system + [{"role": "user", "content": q[lang]}, {"role": "assistant", "content": target}]
        info = {"source_lang": "en", "language": lang, "method": "template", "category": cat.name,
                "source_question": q["en"], "source_target": f"{table.refusal['en']} {cat.reason['en']}"}
        out.append(_child(parent, lang, messages, "template", info, should_refuse=True, inherit=False))
    return out


# ---------------------------------------------------------------- a translator model

def _translated(plan: list[tuple[Example, str]], config: RungConfig, table: Templates,
                skipped: Counter[str] | None, progress: ProgressCallback | None) -> list[Example]:
    from rung.models.factory import load_project_model

    name = config.tune.data.translator
    assert name
    if name not in config.models:
        from rung.errors import did_you_mean

        raise ConfigError(f"tune.data.translator: no model named {name!r}{did_you_mean(name, config.models)}; "
                          f"models are {', '.join(sorted(config.models))}")
    phrase = refusal_phrase(config)
    fixed_phrase = _norm(phrase) == _norm(table.refusal["en"])
    jobs: list[tuple[Example, str, list[tuple[int, str, str]]]] = []  # parent, lang, (turn, prefix, text)
    for parent, lang in plan:
        if _structured(parent.target):
            count(skipped, "translator: structured (JSON) target")
            continue
        pieces = []
        for i, m in enumerate(parent.messages):
            if m.get("role") == "system":
                continue
            text, prefix = m.get("content", "") or "", ""
            if (i == len(parent.messages) - 1 and fixed_phrase and lang in table.refusal
                    and text.strip().lower().startswith(phrase.strip().lower())):
                prefix, text = table.refusal[lang], text.strip()[len(phrase.strip()):].strip()
            pieces.append((i, prefix, text))
        jobs.append((parent, lang, pieces))
    requests = [_request(text, lang) for _, lang, pieces in jobs for _, _, text in pieces if text]
    model = load_project_model(config, name)
    completions = model.generate(requests, progress=progress) if requests else []
    it = iter(completions)
    out = []
    for parent, lang, pieces in jobs:
        messages = [dict(m) for m in parent.messages]
        problem = None
        for i, prefix, text in pieces:
            translated = ""
            if text:
                c = next(it)
                if c.error or c.finish_reason == "error":
                    problem = problem or "translator: generation failed"
                elif c.finish_reason == "length":
                    problem = problem or "translator: translation cut off (max tokens)"
                translated = c.text.strip()
                if not translated:
                    problem = problem or "translator: empty translation"
            messages[i]["content"] = f"{prefix} {translated}".strip()
        if problem is None and not set(cited_docs(parent.target)) <= set(cited_docs(messages[-1]["content"])):
            problem = "translator: a [source] citation was lost"
        if problem is not None:
            count(skipped, problem)
            continue
        info = {"source_lang": "en", "language": lang, "method": f"model:{name}",
                "source_question": question(parent)}
        out.append(_child(parent, lang, messages, f"model:{name}", info, should_refuse=None, inherit=True))
    return out


def _request(text: str, lang: str) -> GenRequest:
    messages: list[Message] = [{"role": "system", "content": TRANSLATE_SYSTEM.format(language=LANGUAGE_NAMES[lang])},
                               {"role": "user", "content": text}]
    params = GenerationParams(max_new_tokens=min(2048, 2 * approx_tokens(text) + 32), temperature=0.0)
    return GenRequest.chat(messages, params)


# ---------------------------------------------------------------- shared

def _child(parent: Example, lang: str, messages: list[Message], method: str, info: dict[str, Any],
           *, should_refuse: bool | None, inherit: bool) -> Example:
    meta: dict[str, Any] = {"negative": info, "lang": lang, "translation": method}
    if "must_include" in parent.metadata:
        meta["must_include"] = []  # English key phrases do not carry over to another language
    if should_refuse is not None:
        meta["should_refuse"] = should_refuse
    tags = ["multilingual", f"lang:{lang}"]
    if not inherit:  # a template question of the same kind: keep what still holds, the refusal
        tags.append("must-refuse")
        meta.update({k: parent.metadata[k] for k in ("intent",) if k in parent.metadata})
        meta["sources"] = []
    return derive(parent, NAME, lang, messages, tags=tags, metadata=meta, rejected=None, inherit=inherit)


def _structured(text: str) -> bool:
    t = text.strip()
    if not t.startswith(("{", "[")):
        return False
    try:
        json.loads(t)
    except ValueError:
        return False
    return True


def _norm(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").lower().split())
