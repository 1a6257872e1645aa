"""Text helpers shared by the pipeline and the harness, at the core floor (they import nothing
of rung but each other): claims (sentences, facts, content tokens), refusal (multilingual
refusal detection), textnorm (text normalisation), jsonx (JSON extraction, JSONL / event
streams), pii (PII patterns)."""
