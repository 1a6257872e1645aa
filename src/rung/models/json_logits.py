"""The transformers side of constrained decoding (see rung.models.constrained): the token
table of a tokenizer and the logits processor that masks tokens the JSON grammar rejects.
torch is imported inside functions; this module is imported only when a processor is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rung.models.constrained import JsonGrammar, State


@dataclass
class TokenTable:
    """Every token's text, indexed for the processor (built once per tokenizer)."""

    texts: list[str]  # "" for special tokens
    by_first: dict[str, list[int]]  # first character -> token ids
    quoted: list[int]  # tokens with a quote or backslash (checked one by one in free strings)
    plain: Any  # torch bool tensor: tokens a free string can always take
    lengths: Any  # torch long tensor: characters per token
    eos: list[int]
    _class_masks: dict[tuple[frozenset[str] | None, frozenset[str]], Any] = field(default_factory=dict)

    def class_mask(self, first: frozenset[str] | None, chars: frozenset[str]) -> Any:
        """Tokens made only of `chars` (and, with `first`, starting with one of `first`)."""
        key = (first, chars)
        if key not in self._class_masks:
            import torch

            self._class_masks[key] = torch.tensor(
                [bool(t) and (first is None or t[0] in first) and all(c in chars for c in t[1 if first else 0:])
                 for t in self.texts])
        return self._class_masks[key]


_TABLES: dict[tuple[int, int, str], TokenTable] = {}


def token_table(tokenizer: Any) -> TokenTable:
    """The TokenTable of a tokenizer (cached for the tokenizer object's lifetime)."""
    key = (id(tokenizer), len(tokenizer), str(getattr(tokenizer, "name_or_path", "")))
    if key in _TABLES:
        return _TABLES[key]
    import torch

    special = set(tokenizer.all_special_ids)
    size = len(tokenizer)
    texts = ["" if i in special else tokenizer.decode([i]) for i in range(size)]
    by_first: dict[str, list[int]] = {}
    quoted, plain = [], torch.zeros(size, dtype=torch.bool)
    for i, t in enumerate(texts):
        if not t:
            continue
        by_first.setdefault(t[0], []).append(i)
        if '"' in t or "\\" in t:
            quoted.append(i)
        elif all(ord(c) >= 0x20 for c in t):
            plain[i] = True
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    table = TokenTable(texts, by_first, quoted, plain, torch.tensor([len(t) for t in texts]), eos)
    _TABLES[key] = table
    return table


class JsonLogitsProcessor:
    """Masks the tokens that would leave the grammar (see the module doc); one per generate()."""

    def __init__(self, grammar: JsonGrammar, table: TokenTable, max_new_tokens: int | None = None) -> None:
        self.grammar, self.table, self.max_new_tokens = grammar, table, max_new_tokens
        self.width: int | None = None
        self.states: list[State | None] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.width is None:
            self.width = input_ids.shape[1]
            self.states = [self.grammar.start() for _ in range(input_ids.shape[0])]
        else:
            last = input_ids[:, -1].tolist()
            for row, tok in enumerate(last):
                st = self.states[row]
                if st is not None and not self.grammar.done(st):
                    text = self.table.texts[tok] if tok < len(self.table.texts) else ""
                    self.states[row] = self.grammar.feed(st, text)
        generated = input_ids.shape[1] - self.width
        left = None if self.max_new_tokens is None else self.max_new_tokens - generated
        mask = torch.zeros_like(scores, dtype=torch.bool)
        for row, st in enumerate(self.states):
            allowed = self._allowed(st, left)
            mask[row, allowed[0]] = True
            if allowed[1] is not None:
                n = allowed[1].shape[0]
                mask[row, :n] |= allowed[1]
        return scores.masked_fill(~mask, float("-inf"))

    def _allowed(self, st: State | None, left: int | None) -> tuple[list[int], Any]:
        """(token ids, bool tensor over the vocabulary or None) the row may take next."""
        g, t = self.grammar, self.table
        if st is None or g.done(st):
            return t.eos, None  # finished (or lost: should not happen): end the sequence
        rest = g.shortest(st)
        if left is not None and left <= len(rest) + 1:
            ids = [i for i in t.by_first.get(rest[0], []) if rest.startswith(t.texts[i])]
            if ids:
                return ids, None
        free = g.free_string(st)
        if free is not None:
            seg, n = free
            plain = t.plain & (t.lengths <= seg.max_len - n)
            if seg.chars is not None:
                plain &= t.class_mask(seg.first if n == 0 else None, seg.chars)
            return [i for i in t.quoted if g.feed(st, t.texts[i]) is not None], plain
        must = g.forced(st)
        if must:
            # the text is fixed: the longest token that is a prefix of it (as a tokenizer would
            # write it), or a token that covers it and goes on validly
            prefixes = [i for i in t.by_first.get(must[0], []) if must.startswith(t.texts[i])]
            longest = max((len(t.texts[i]) for i in prefixes), default=0)
            ids = [i for i in prefixes if len(t.texts[i]) == longest]
            ids += [i for i in t.by_first.get(must[0], []) if len(t.texts[i]) > len(must)
                    and t.texts[i].startswith(must) and g.feed(st, t.texts[i]) is not None]
            if ids:
                return ids, None
        expected = g.expected(st) or set()
        ids = [i for c in expected for i in t.by_first.get(c, []) if g.feed(st, t.texts[i]) is not None]
        return ids or t.eos, None
