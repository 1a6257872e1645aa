"""Claims and facts in an answer: sentence splitting, citation markers, numbers, dates, names.

Shared by the groundedness and citation scorers. Pure python and regular expressions, no model:
`split_claims` turns an answer into sentences with the citation markers that follow them;
`extract_facts` finds the checkable atoms of a claim (numbers, amounts, percentages, dates,
named entities, product codes) in a normalised form, so that "$1,000" matches "1000", "thirty
days" matches "30 days" and "5 March 2024" matches "2024-03-05".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------- tokens

STOPWORDS = frozenset("""
a an the and or but nor so yet if then than that this these those there here it its it's
is are was were be been being am do does did doing have has had having will would shall should
can could may might must of in on at by for with about against between into through during
before after above below to from up down out off over under again further once all any both each
few more most other some such no not only own same too very just also as what which who whom
whose when where why how i me my we our you your he him his she her they them their us
according per via while whereas however therefore thus hence since because although though
s t re ve ll d m
""".split())

_APOS = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def normalise(text: str) -> str:
    """Unify quotes/apostrophes and spaces; drop thousands separators inside numbers."""
    text = text.translate(_APOS)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return re.sub(r"[ \t]+", " ", text)


def stem(word: str) -> str:
    """A deliberately small suffix stripper (plural, -ing, -ed, -ly), enough for overlap."""
    w = word
    if len(w) > 4:
        for suf, rep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("ly", "")):
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                return w[: -len(suf)] + rep
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def content_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed words and numbers of `text`, without stopwords ("thirty" -> "30")."""
    words = re.findall(r"[^\W_]+(?:\.\d+)?", normalise(text).lower())
    return [_NUMWORD_TOKEN.get(w) or stem(w) for w in words if w not in STOPWORDS]


_NUMWORD_TOKEN = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUMWORD_TOKEN.update({w: str(10 * (i + 2)) for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())})


# ---------------------------------------------------------------- sentences and citations

CITATION_RE = re.compile(
    r"\[\^?\s*([A-Za-z0-9][\w.\-:/#]*(?:\s*[,;]\s*\^?[A-Za-z0-9][\w.\-:/#]*)*)\s*\]"
    r"|【([^】]+)】")
_ABBREV = re.compile(
    r"\b(?:e\.g|i\.e|etc|vs|approx|incl|no|dr|mr|mrs|ms|prof|st|inc|ltd|co|corp|jr|sr|fig|eq|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|u\.s|u\.k|[a-z])\.", re.IGNORECASE)
_SPLIT = re.compile(r"(?<=[.!?\u2026])[\"')\]]*\s+(?=[\"'(\[¿¡]?[A-Z0-9\u00C0-\u024F\[¿¡])")
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|\d{1,2}[.)])\s+")
_BOILERPLATE = re.compile(
    r"^(?:(?:sure|certainly|of course|absolutely|great question|good question|okay|ok|yes|no|hi|"
    r"hello|thanks?(?: you)?)[!.,]*(?: |$)|i hope (?:this|that) helps|hope (?:this|that) helps|"
    r"let me know if|feel free to|please (?:let me know|reach out|contact)|"
    r"(?:here is|here are|here's) (?:the|a|an|what|some)\b.*:$|is there anything else|"
    r"glad to help|happy to help|i'?d be happy to)", re.IGNORECASE)


@dataclass
class Claim:
    """One sentence of an answer. `citations` are the ids in the markers that follow it."""

    text: str  # the sentence without citation markers
    index: int  # position among the answer's sentences
    citations: list[str] = field(default_factory=list)
    kind: str = "factual"  # factual | boilerplate | question | meta


def citation_ids(text: str) -> list[str]:
    """Every id named by an inline marker, in order, without duplicates."""
    out: list[str] = []
    for m in CITATION_RE.finditer(text):
        for part in re.split(r"\s*[,;]\s*", m.group(1) or m.group(2)):
            part = part.strip().lstrip("^")
            if part and part not in out:
                out.append(part)
    return out


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", CITATION_RE.sub("", text)).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: lines (bullets) first, then sentence ends, sparing abbreviations."""
    out: list[str] = []
    for line in normalise(text).splitlines():
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        masked = _ABBREV.sub(lambda m: m.group(0).replace(".", "\x00"), line)
        masked = re.sub(r"(?<=\d)\.(?=\d)", "\x00", masked)
        for part in _SPLIT.split(masked):
            part = part.replace("\x00", ".").strip()
            if part:
                out.append(part)
    return out


_META = re.compile(
    r"\b(?:the |these |both |all |some )?(?:provided |given |available |retrieved )?"
    r"(?:context|documents?|sources?|passages?|excerpts?|texts?|information|evidence|studies|reports?)\b"
    r".{0,60}\b(?:disagree|conflict|contradict|differ|diverge|vary|varies|mixed|inconsistent|"
    r"limited|unclear|inconclusive|uncertain|only (?:cover|discuss|mention|describe|address)|"
    r"do(?:es)? not agree)", re.IGNORECASE)


def classify_sentence(sentence: str) -> str:
    """factual | boilerplate | question | meta (a remark about the sources, not about the world)."""
    s = sentence.strip()
    if s.endswith("?"):
        return "question"
    if _BOILERPLATE.match(s) or len(content_tokens(s)) == 0:
        return "boilerplate"
    if _META.search(s) and not extract_facts(s) and len(content_tokens(s)) <= 8:
        return "meta"
    return "factual"


def split_claims(text: str) -> list[Claim]:
    """The answer's sentences as claims; a marker that opens a sentence belongs to the one before."""
    claims: list[Claim] = []
    for sent in split_sentences(text):
        lead = re.match(r"^(?:\s*(?:\[[^\]\s]+\]|【[^】]+】))+", sent)
        if lead and claims:
            claims[-1].citations += [c for c in citation_ids(lead.group(0)) if c not in claims[-1].citations]
            sent = sent[lead.end():]
        clean = strip_citations(sent)
        if not clean:
            continue
        claims.append(Claim(clean, len(claims), citation_ids(sent), classify_sentence(clean)))
    return claims


# ---------------------------------------------------------------- facts

@dataclass(frozen=True)
class Fact:
    """A checkable atom of a claim. `value` is normalised: a float, a date tuple or a name."""

    kind: str  # number | date | entity | code
    text: str  # as written in the claim
    value: object

    def describe(self) -> str:
        return f"{'name' if self.kind == 'entity' else self.kind} {self.text!r}" if self.kind in (
            "entity", "code") else f"{self.kind} {self.text}"


_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MON = (r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
        r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DATE_RES = [
    re.compile(r"\b(?P<y>(?:19|20)\d\d)-(?P<m>\d\d)-(?P<d>\d\d)\b"),
    re.compile(r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<y>(?:19|20)\d\d)\b"),
    re.compile(_MON + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<y>(?:19|20)\d\d))?\b", re.I),
    re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MON + r"(?:,?\s+(?P<y>(?:19|20)\d\d))?\b", re.I),
    re.compile(r"\b" + _MON + r",?\s+(?P<y>(?:19|20)\d\d)\b", re.I),
]
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9,
          "b": 1e9, "trillion": 1e12}
_NUM_RE = re.compile(
    r"(?<![\w.])[$€£¥]?\s?(?P<num>\d+(?:\.\d+)?)(?:(?:st|nd|rd|th)\b)?"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn)\b|(?P<short>[kKmMbB])\b)?")
_WORDNUM = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_WORDNUM.update({w: 10 * (i + 2) for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())})
_WORDMUL = {"hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9}
_WORDNUM_RE = re.compile(
    r"\b(?:" + "|".join(sorted(list(_WORDNUM) + list(_WORDMUL), key=len, reverse=True)) + r")"
    r"(?:(?:\s+|-|\s+and\s+)(?:" + "|".join(sorted(list(_WORDNUM) + list(_WORDMUL), key=len, reverse=True)) + r"))*\b",
    re.I)
_CODE_RE = re.compile(r"\b(?=[A-Za-z0-9\-]*\d)(?=[A-Za-z0-9\-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b")
_NUM_UNIT = re.compile(r"^\d+(?:\.\d+)?(?:st|nd|rd|th|[a-z]{1,3})$")
_ACRONYM = re.compile(r"\b[A-Z][A-Z&]{1,}s?\b")
_CAP = r"[A-Z\u00C0-\u00DE][\w\u00C0-\u024F'&.\-]*"
_NAME_RE = re.compile(_CAP + r"(?:\s+(?:(?:of|the|de|la|del|van|von|der|for|and|&)\s+)*" + _CAP + r")*")
_NOT_NAMES = frozenset("""i i'm i've i'd i'll a an the this that these those it its there here however
therefore thus also yes no note please if when while although but and or so then for in on at by
with according based as some many most all each both first second third finally overall today
monday tuesday wednesday thursday friday saturday sunday ok okay sure""".split()) | set(_MONTHS)


def _words_value(text: str) -> float | None:
    total, current = 0.0, 0.0
    for w in re.split(r"[\s-]+", text.lower()):
        if w == "and":
            continue
        if w in _WORDNUM:
            current += _WORDNUM[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in _WORDMUL:
            total += max(current, 1) * _WORDMUL[w]
            current = 0
    return total + current


def _month(word: str) -> int | None:
    w = word.lower().rstrip(".")
    return _MONTHS.get(w) or _MONTHS.get(w[:3])


def _dates(text: str) -> tuple[list[Fact], str]:
    facts: list[Fact] = []
    for rx in _DATE_RES:
        def repl(m: re.Match[str]) -> str:
            g = m.groupdict()
            if "a" in g:  # 3/5/2024: month/day unless the first part cannot be a month
                a, b = int(g["a"]), int(g["b"])
                mon, day = (b, a) if a > 12 else (a, b)
            else:
                mon = int(g["m"]) if g.get("m") else _month(g["mon"])
                day = int(g["d"]) if g.get("d") else None
            year = int(g["y"]) if g.get("y") else None
            if mon is None or not (1 <= mon <= 12) or (day is not None and not 1 <= day <= 31):
                return m.group(0)
            facts.append(Fact("date", m.group(0).strip(), (year, mon, day)))
            return " " * len(m.group(0))
        text = rx.sub(repl, text)
    return facts, text


def extract_facts(text: str, entities: bool = True) -> list[Fact]:
    """Numbers (amounts, percentages, number words), dates, names and codes in `text`."""
    text = normalise(strip_citations(text))
    facts, rest = _dates(text)
    for m in _CODE_RE.finditer(rest):
        tok = m.group(0)
        if not _NUM_UNIT.match(tok.lower()) and not re.fullmatch(r"[\d-]+", tok):
            facts.append(Fact("code", tok, tok.lower()))
            rest = rest[:m.start()] + " " * len(tok) + rest[m.end():]
    for m in _NUM_RE.finditer(rest):
        scale = (m.group("scale") or m.group("short") or "").lower()
        val = float(m.group("num")) * _SCALE.get(scale, 1.0)
        facts.append(Fact("number", m.group(0).strip(), val))
    for m in _WORDNUM_RE.finditer(rest):
        if m.group(0).lower() in ("one", "zero", "hundred", "thousand", "million", "billion"):
            continue  # "one of", "no one", "thousands of": too common to be a checkable number
        val = _words_value(m.group(0))
        if val:
            facts.append(Fact("number", m.group(0), val))
    if entities:
        facts += _entities(rest)
    return facts


def _entities(text: str) -> list[Fact]:
    out: list[Fact] = []
    seen: set[str] = set()
    for sent in split_sentences(text) or [text]:
        caps_mid = re.findall(r"(?<=\s)[A-Z]\w+", sent)
        words_mid = re.findall(r"(?<=\s)\w+", sent)
        german_like = len(words_mid) >= 6 and len(caps_mid) / len(words_mid) > 0.3
        for m in _NAME_RE.finditer(sent):
            words = m.group(0).rstrip(".'-").split()
            while words and words[0].lower().strip("'") in _NOT_NAMES | STOPWORDS:
                words = words[1:]
            words = [re.sub(r"'s?$", "", w) for w in words]
            name = " ".join(words).strip()
            if not name or name.lower() in _NOT_NAMES:
                continue
            at_start = sent[:m.start()].strip(" \"'(") == "" and len(words) == len(m.group(0).split())
            single = len(words) == 1
            if single and (at_start or german_like) and not _ACRONYM.fullmatch(name):
                continue
            if name.lower() not in seen:
                seen.add(name.lower())
                out.append(Fact("entity", name, name.lower()))
    return out


# ---------------------------------------------------------------- matching facts to sources

@dataclass
class SourceFacts:
    """What a set of source texts contains, indexed for `missing_facts`."""

    numbers: set[float]
    dates: list[tuple[int | None, int, int | None]]
    text: str  # normalised, lower-cased
    tokens: set[str]

    @staticmethod
    def of(texts: list[str]) -> SourceFacts:
        joined = "\n".join(texts)
        facts = extract_facts(joined, entities=False)
        nums = {float(f.value) for f in facts if f.kind == "number"}  # type: ignore[arg-type]
        dates = [f.value for f in facts if f.kind == "date"]
        for y, _m, d in dates:  # type: ignore[misc]
            nums.update(float(x) for x in (y, d) if x is not None)
        low = normalise(joined).lower()
        toks = set(re.findall(r"[^\W_]+", low))
        return SourceFacts(nums, dates, low, toks | {stem(t) for t in toks})  # type: ignore[arg-type]


def _num_found(v: float, nums: set[float]) -> bool:
    return any(abs(v - n) <= 1e-9 * max(1.0, abs(n)) for n in nums)


def fact_found(fact: Fact, src: SourceFacts) -> bool:
    if fact.kind == "number":
        return _num_found(float(fact.value), src.numbers)  # type: ignore[arg-type]
    if fact.kind == "date":
        y, m, d = fact.value  # type: ignore[misc]
        for sy, sm, sd in src.dates:
            if sm == m and (y is None or sy is None or sy == y) and (d is None or sd == d):
                return True
        return bool(y is not None and m is None)
    if fact.kind == "code":
        return str(fact.value) in src.text or str(fact.value).replace("-", "") in src.text.replace("-", "")
    name = str(fact.value)
    if name in src.text:
        return True
    parts = [w for w in re.findall(r"[^\W_]+", name) if w not in STOPWORDS]
    return bool(parts) and all(w in src.tokens or stem(w) in src.tokens for w in parts)


def missing_facts(claim: str, src: SourceFacts) -> list[Fact]:
    """The facts of `claim` that appear in none of the sources."""
    return [f for f in extract_facts(claim) if not fact_found(f, src)]
