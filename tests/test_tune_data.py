"""Training datasets (rung.tune.data): sources with lineage, checks, balancing, card, CLI.

Real files in tmp_path, a real SQLite run store, a real HF dataset saved to disk; no model."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from clirun import run_rung

from rung.config import BalanceConfig, DataChecksConfig, load_config
from rung.core import Answer, Case, Score
from rung.errors import DataError
from rung.evals.store import RunStore
from rung.evals.types import CaseResult, RunInfo
from rung.tune.data import build_dataset, datasets_root
from rung.tune.data.balance import balance
from rung.tune.data.checks import (
    check_counter_examples,
    check_empty_targets,
    check_exact_duplicates,
    check_leakage,
    check_near_duplicates,
    run_checks,
)
from rung.tune.data.files import examples_from_file
from rung.tune.data.language import guess_language
from rung.tune.data.sources import LineageDefaults
from rung.tune.data.traces import SCORER_ANNOTATOR
from rung.tune.example import Dataset, Example, Lineage

REFUSAL = "I'm sorry, I can't help with that."

EVAL = [
    {"id": "e-refund", "input": "How many days do I have to return the Arc R6 router in the EU?",
     "reference": "14 days."},
    {"id": "e-price", "input": "What does the Vault Plus plan cost per month?", "reference": "EUR 4.99."},
    {"id": "e-reset", "input": "How do I factory reset my Ember T2 thermostat?",
     "reference": "Hold the dial for 10 seconds."},
]

TRAIN = [
    {"id": "t-ship", "input": "Do you ship the satellite to Norway?", "reference": "No, only to the EU.",
     "tags": ["product:router", "jurisdiction:EU"]},
    {"id": "t-refuse", "input": "Give me my neighbour's account password.", "should_refuse": True,
     "tags": ["must-refuse"]},
    {"id": "t-noref", "input": "Tell me a joke about thermostats.", "tags": ["product:thermostat"]},
    {"id": "t-chat", "messages": [{"role": "user", "content": "Hallo, wie lange gilt die Garantie für das Gerät?"}],
     "reference": "Die Garantie gilt zwei Jahre ab Lieferung.", "tags": ["lang:de"]},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "eval.jsonl", EVAL)
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    (tmp_path / "rung.yaml").write_text("""
project: data-test
suites:
  eval: {path: eval.jsonl, scorers: [contains]}
tune:
  data:
    train: train.jsonl
    product_version: p-7
    policy_version: pol-3
    annotator: alice
""", encoding="utf-8")
    return tmp_path


def make_run(store_path: Path) -> str:
    """A stored run: one good answer, one bad with a reference, one bad refusal, one bad with
    no reference, one unmeasured, one later epoch."""
    store = RunStore(store_path)
    info = store.create_run(RunInfo(id="", candidate="rag", candidate_hash="h", candidate_config={},
                                    suite="probe", suite_hash="s", created_at="2026-01-02T03:04:05+00:00"))

    def res(case: Case, text: str, scores: list[Score], epoch: int = 0) -> CaseResult:
        return CaseResult(case=case, answer=Answer(text=text), scores=scores, epoch=epoch)

    good = Case(id="r-good", input="Is the Arc R6 mesh pack sold in Spain?", reference="Yes.")
    bad = Case(id="r-bad", input="When was the Ember T2 launched?", reference="In 2024.")
    refuse = Case(id="r-refuse", input="Disable identity checks for my ex's account.", should_refuse=True)
    noref = Case(id="r-noref", input="Which colour is nicest for the router?")
    unmeasured = Case(id="r-unmeasured", input="Is Vault end-to-end encrypted?", reference="Yes.")
    store.add_results(info.id, [
        res(good, "Yes, it is sold in Spain.", [Score("task_success", 1.0), Score("hallucination", 0.0, False)]),
        res(bad, "It launched in 1999.", [Score("task_success", 0.0), Score("hallucination", 1.0, False)]),
        res(refuse, "Sure, here is how.", [Score("refusal_correct", 0.0), Score("task_success", None)]),
        res(noref, "Blue is nicest.", [Score("hallucination", 1.0, False)]),
        res(unmeasured, "Yes.", [Score("task_success", None)]),
        res(good, "Yes, it is sold in Spain.", [Score("task_success", 1.0)], epoch=1),
    ])
    store.finish_run(info.id)
    store.close()
    return info.id


def test_lineage_survives_build_save_load_for_every_source(project: Path):
    import datasets

    run_id = make_run(project / ".rung" / "rung.db")
    chat = write_jsonl(project / "chat.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Can I pause my Vault subscription?"},
                      {"role": "assistant", "content": "Yes, for up to three months."}],
         "annotator": "bob", "tags": ["product:storage"], "created_at": "2025-12-01T00:00:00+00:00"},
        "",
        {"prompt": "Where is the reset pin hole on the router?", "completion": "On the back, next to the power jack.",
         "policy_version": "pol-4", "source_ticket": "T-99"},
    ])
    hf = project / "hf"
    datasets.Dataset.from_list([  # the second row has no tags: HF stores None there
        {"prompt": "Does the thermostat work with heat pumps?", "completion": "Yes, with the Heat Link.",
         "tags": ["product:thermostat"]},
        {"prompt": "Is there a student discount for Vault?", "completion": "No, not at the moment."},
    ]).save_to_disk(str(hf))

    cfg = load_config(project / "rung.yaml")
    ds, card = build_dataset(cfg, runs=[run_id[:12]], files=[chat, hf])
    folder = datasets_root(cfg) / ds.version
    loaded = Dataset.load(folder)
    assert [e.to_dict() for e in loaded.examples] == [e.to_dict() for e in ds.examples]
    by_id = {e.id: e for e in loaded.examples}

    # cases: reference, refusal target, case with neither skipped and counted
    assert by_id["case:t-ship"].lineage == Lineage("case", "t-ship", "p-7", "pol-3", "alice",
                                                   by_id["case:t-ship"].lineage.created_at)
    assert by_id["case:t-ship"].lineage.created_at.startswith("20")
    assert by_id["case:t-refuse"].target == REFUSAL
    assert by_id["case:t-chat"].messages[0]["content"].startswith("Hallo")
    assert "case:t-noref" not in by_id
    assert card["skipped"]["case: no reference and should_refuse is not true"]["refs"] == ["t-noref"]

    # traces: good -> positive, bad -> counter with the reference and the rejected answer
    good = by_id[f"trace:{run_id}/r-good"]
    assert good.label == "positive" and good.target == "Yes, it is sold in Spain."
    assert good.lineage.source == "trace" and good.lineage.ref == f"{run_id}/r-good"
    assert good.lineage.created_at == "2026-01-02T03:04:05+00:00"
    assert good.lineage.annotator == "alice" and good.lineage.policy_version == "pol-3"
    bad = by_id[f"trace:{run_id}/r-bad"]
    assert (bad.label, bad.target, bad.rejected) == ("counter", "In 2024.", "It launched in 1999.")
    refuse = by_id[f"trace:{run_id}/r-refuse"]
    assert (refuse.label, refuse.target, refuse.rejected) == ("counter", REFUSAL, "Sure, here is how.")
    skipped = card["skipped"]
    assert skipped["trace: bad answer without a reference to correct it"]["refs"] == [f"{run_id}/r-noref"]
    assert skipped["trace: no verdict (goal not measured)"]["count"] == 1
    assert skipped["trace: epoch > 0 (only epoch 0 is used)"]["count"] == 1

    # files: line numbers (blank line 2 skipped), per-record lineage overrides, HF rows
    pause = by_id[f"file:{chat}:1"]
    assert pause.lineage.ref == f"{chat}:1" and pause.lineage.annotator == "bob"
    assert pause.lineage.created_at == "2025-12-01T00:00:00+00:00" and pause.tags == ["product:storage"]
    pin = by_id[f"file:{chat}:3"]
    assert pin.lineage.policy_version == "pol-4" and pin.lineage.product_version == "p-7"
    assert pin.metadata["source_ticket"] == "T-99" and pin.messages[0]["role"] == "user"
    assert by_id[f"file:{hf}:2"].target == "No, not at the moment."
    assert by_id[f"file:{hf}:2"].lineage.source == "file" and by_id[f"file:{hf}:2"].tags == []
    assert by_id[f"file:{hf}:1"].tags == ["product:thermostat"]

    assert card["counts"]["source"] == {"file": 4, "case": 3, "trace": 3}
    assert card["counts"]["label"] == {"positive": 8, "counter": 2}
    assert card["inputs"]["runs"] == [run_id]
    # same inputs -> same version
    assert build_dataset(cfg, runs=[run_id], files=[chat, hf], save=False)[0].version == ds.version


def test_nothing_to_build_and_missing_train_file_are_clear_errors(project: Path):
    cfg = load_config(project / "rung.yaml")
    cfg.tune.data.train = "nope.jsonl"
    with pytest.raises(DataError, match=r"nope\.jsonl: no such train file or folder \(tune\.data\.train\)"):
        build_dataset(cfg, save=False)
    cfg.tune.data.train = None
    with pytest.raises(DataError, match="no training examples: set tune.data.train"):
        build_dataset(cfg, save=False)


def test_leakage_is_checked_against_the_eval_suites_not_the_train_split(project: Path):
    cfg = load_config(project / "rung.yaml")
    cfg.suites["train"] = cfg.suites["eval"].model_copy(update={"path": "train.jsonl"})
    _, card = build_dataset(cfg, save=False)  # the train split is a suite too: not leakage
    leak = next(f for f in card["checks"] if f["check"] == "leakage")
    assert leak["severity"] == "ok" and "3 eval case(s) in 1 suite(s)" in leak["message"]
    cfg.tune.data.checks.leakage_suites = ["train"]  # named on purpose: every example leaks
    with pytest.raises(DataError, match="3 example\\(s\\) repeat an eval question \\(3 exactly"):
        build_dataset(cfg, save=False)
    cfg.tune.data.checks.leakage_suites = ["evl"]
    with pytest.raises(DataError, match="no suite named 'evl' \\(did you mean 'eval'\\?\\)"):
        build_dataset(cfg, save=False)


def test_trace_annotator_defaults_to_the_scorers(project: Path):
    run_id = make_run(project / ".rung" / "rung.db")
    cfg = load_config(project / "rung.yaml")
    cfg.tune.data.annotator = ""
    ds, _ = build_dataset(cfg, runs=[run_id], save=False)
    anns = {e.lineage.source: e.lineage.annotator for e in ds.examples}
    assert anns == {"case": "", "trace": SCORER_ANNOTATOR}


def ex(i: int | str, user: str, target: str, label: str = "positive", tags: list[str] | None = None) -> Example:
    return Example(id=f"x{i}", messages=[{"role": "user", "content": user}, {"role": "assistant", "content": target}],
                   lineage=Lineage("file", f"f.jsonl:{i}"), label=label, tags=tags or [])  # type: ignore[arg-type]


CLEAN = [
    ex(1, "Do you ship the satellite to Norway?", "No, only inside the EU."),
    ex(2, "Can I pay my invoice by bank transfer?", "Yes, with the reference on the invoice."),
    ex(3, "Why does the thermostat display blink red?", "The battery is low; replace it."),
    ex(4, "How do I invite family members to Vault Family?", "Open Settings, then Members, then Invite."),
]


def eval_cases() -> dict[str, list[Case]]:
    return {"eval": [Case(id=c["id"], input=c["input"], reference=c["reference"]) for c in EVAL]}


def test_leakage_fires_on_planted_eval_questions_and_not_on_clean_data():
    assert check_leakage(CLEAN, eval_cases(), 0.6).severity == "ok"
    planted = CLEAN + [
        ex("exact", "how many days do I have to return the Arc R6 router in the EU", "14 days."),
        ex("near", "How many days do I have to return my Arc R6 router in the EU shop?", "14."),
    ]
    f = check_leakage(planted, eval_cases(), 0.6)
    assert f.severity == "error" and f.count == 2
    kinds = {s["id"]: (s["kind"], s["eval_case"]) for s in f.samples}
    assert kinds == {"xexact": ("exact", "eval/e-refund"), "xnear": ("near", "eval/e-refund")}
    assert "2 example(s) repeat an eval question (1 exactly" in f.message


def test_duplicate_checks_fire_on_planted_duplicates_only():
    assert check_exact_duplicates(CLEAN).severity == "ok"
    assert check_near_duplicates(CLEAN, 0.9, "warning").severity == "ok"
    dup = ex(9, CLEAN[0].messages[0]["content"], CLEAN[0].target)
    f = check_exact_duplicates(CLEAN + [dup])
    assert f.severity == "error" and f.count == 1 and f.samples[0]["ids"] == ["x1", "x9"]
    # an exact duplicate is not reported again as a near duplicate
    assert check_near_duplicates(CLEAN + [dup], 0.9, "warning").severity == "ok"
    near = ex(10, "Do you ship the satellite to Norway please?", "No, only inside the EU.")
    f = check_near_duplicates(CLEAN + [near], 0.8, "warning")
    assert f.severity == "warning" and f.samples[0]["ids"] == ["x1", "x10"]
    assert f.samples[0]["similarity"] >= 0.8
    # a hard negative of x1 (same question, sources in the system turn) is its variant, not a duplicate
    negative = Example(id="x1~long_context-0", lineage=Lineage("negative", "long_context:x1", parent="x1"),
                       messages=[{"role": "system", "content": "Sources: shipping policy ..."}, *CLEAN[0].messages])
    f = check_near_duplicates(CLEAN + [negative], 0.8, "warning")
    assert f.severity == "ok" and "1 pair(s) of an example and its own hard negatives not counted" in f.message


def test_empty_targets_and_counter_example_checks():
    empty = ex(5, "Hello?", "   ")
    no_assistant = Example(id="x6", messages=[{"role": "user", "content": "Hi"}], lineage=Lineage("file", "f:6"))
    f = check_empty_targets(CLEAN + [empty, no_assistant])
    assert f.severity == "error" and f.count == 2 and {s["id"] for s in f.samples} == {"x5", "x6"}
    assert check_empty_targets(CLEAN).severity == "ok"

    f = check_counter_examples(CLEAN, 0.2, "warning")
    assert f.severity == "warning" and "0 of 4 examples" in f.message
    assert check_counter_examples(CLEAN, 0.2, "error").severity == "error"
    with_counter = CLEAN + [ex(7, "Reset my ex's password", "I'm sorry, I can't help with that.", "counter")]
    assert check_counter_examples(with_counter, 0.2, "error").severity == "ok"

    findings = run_checks(CLEAN + [empty], {}, DataChecksConfig(), allow=["empty_targets"])
    by = {f.check: f for f in findings}
    assert by["empty_targets"].allowed and not by["empty_targets"].blocking
    with pytest.raises(DataError, match="did you mean 'leakage'"):
        run_checks(CLEAN, {}, DataChecksConfig(), allow=["leakge"])


def test_build_stops_on_blocking_findings_unless_allowed(project: Path):
    write_jsonl(project / "extra.jsonl", [
        {"prompt": "How do I factory reset my Ember T2 thermostat?", "completion": "Hold the dial."},
        {"prompt": "Anything?", "completion": ""},
    ])
    cfg = load_config(project / "rung.yaml")
    with pytest.raises(DataError) as e:
        build_dataset(cfg, files=[project / "extra.jsonl"], save=False)
    msg = str(e.value)
    assert "failed 2 check(s)" in msg and "leakage:" in msg and "empty_targets:" in msg
    assert "--allow empty_targets --allow leakage" in msg
    ds, card = build_dataset(cfg, files=[project / "extra.jsonl"], allow=["leakage", "empty_targets"], save=False)
    assert len(ds) == 5
    leak = next(f for f in card["checks"] if f["check"] == "leakage")
    assert leak["allowed"] and leak["samples"][0]["eval_case"] == "eval/e-reset"


def tagged(n_router: int, n_storage: int, n_counter: int) -> list[Example]:
    out, i = [], 0
    for product, n in (("router", n_router), ("storage", n_storage)):
        for _ in range(n):
            long = " ".join(["word"] * 150) if i % 3 == 0 else "short answer"
            label = "counter" if i < n_counter else "positive"
            out.append(ex(i, f"question {i} about the {product}", long, label, [f"product:{product}", "misc"]))
            i += 1
    out.append(ex(i, "an untagged question", "an answer"))
    return out


def test_balance_quotas_labels_lengths_and_determinism():
    data = tagged(30, 10, 8)
    kept, report = balance(data, BalanceConfig(tags={"product:": "equal"}), seed=1)
    products = [t for e in kept for t in e.tags if t.startswith("product:")]
    assert products.count("product:router") == 10 and products.count("product:storage") == 10
    assert kept[-1].id == f"x{len(data) - 1}"  # untagged: untouched by the quota

    cfg = BalanceConfig(tags={"product:": "equal"}, counter_fraction=0.25)
    kept, report = balance(data, cfg, seed=1)
    counters = sum(e.label == "counter" for e in kept)
    assert counters >= 1 and counters / len(kept) == pytest.approx(0.25, abs=0.05)
    assert len(kept) < 21
    assert report.before == 41 and report.after == len(kept)
    assert report.steps[0].before == {"(none)": 1, "product:router": 30, "product:storage": 10}
    assert report.steps[0].after == {"(none)": 1, "product:router": 10, "product:storage": 10}
    assert report.counts_before["label"] == {"counter": 8, "positive": 33}
    # deterministic: same seed, same examples, same order; another seed draws others
    again, _ = balance(data, cfg, seed=1)
    assert [e.id for e in again] == [e.id for e in kept]
    other, _ = balance(data, cfg, seed=2)
    assert [e.id for e in other] != [e.id for e in kept]
    # kept examples keep their order
    pos = {e.id: i for i, e in enumerate(data)}
    assert [pos[e.id] for e in kept] == sorted(pos[e.id] for e in kept)

    kept, report = balance(data, BalanceConfig(long_fraction=0.5, long_words=100), seed=0)
    assert report.counts_after["length"]["long"] == report.counts_after["length"]["short"]
    kept, _ = balance(data, BalanceConfig(tags={"product:router": 5}, max_examples=12), seed=0)
    assert len(kept) == 12 and sum("product:router" in e.tags for e in kept) <= 5
    with pytest.raises(DataError, match="'equal' applies to a prefix"):
        balance(data, BalanceConfig(tags={"product:router": "equal"}), seed=0)


def test_bad_files_give_file_line_errors(tmp_path: Path):
    f = write_jsonl(tmp_path / "bad.jsonl", [
        {"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]},
        '{"prompt": "broken json",',
        {"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        {"prompt": "no completion"},
        {"messages": [{"role": "user", "content": "last is user"}]},
        {"mesages": [{"role": "user", "content": "typo"}]},
        ["not", "an", "object"],
    ])
    with pytest.raises(DataError) as e:
        examples_from_file(f, LineageDefaults(), shown="bad.jsonl")
    lines = str(e.value).splitlines()
    assert lines[0] == "bad.jsonl: 6 bad records:"
    assert lines[1].startswith("bad.jsonl:2: not valid JSON")
    assert lines[2].startswith("bad.jsonl:3: field 'messages.0.role'") and "'human'" in lines[2]
    assert lines[3] == ("bad.jsonl:4: missing field 'completion': expected 'messages' (chat) or "
                        "'prompt' + 'completion' (prompt/completion)")
    assert lines[4].startswith("bad.jsonl:5: field 'messages': the last message must be the assistant's")
    assert "'mesages' (did you mean 'messages'?)" in lines[5] and lines[5].startswith("bad.jsonl:6:")
    assert lines[6].startswith("bad.jsonl:7: expected a JSON object")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"notes\.txt: unsupported training file '\.txt'"):
        examples_from_file(tmp_path / "notes.txt", LineageDefaults())
    with pytest.raises(DataError, match="not a HF dataset"):
        examples_from_file(tmp_path, LineageDefaults())


def test_language_heuristic():
    assert guess_language("How long is the warranty of the router?") == "en"
    assert guess_language("¿Cuánto cuesta el plan para mi familia?") == "es"
    assert guess_language("Combien coûte Vault Basic par an en France ?") == "fr"
    assert guess_language("Wie lange gilt die Garantie für das Gerät?") == "de"
    assert guess_language("Arc R6") == "unknown"


def test_support_desk_example_builds_without_false_leakage():
    example = Path(__file__).resolve().parents[1] / "examples" / "support-desk" / "rung.yaml"
    cfg = load_config(example)
    ds, card = build_dataset(cfg, save=False)
    sources = card["counts"]["source"]
    assert sources["case"] == 231 and sources["negative"] > 0 and len(ds) == sum(sources.values())
    checks = {f["check"]: f["severity"] for f in card["checks"]}
    assert checks["leakage"] == "ok" and checks["exact_duplicates"] == "ok" and checks["empty_targets"] == "ok"
    langs = card["counts"]["language"]  # the cases' lang: tags are 195 en, 12 each de/es/fr
    assert langs["en"] >= 195 and min(langs["de"], langs["es"], langs["fr"]) >= 12
    assert {e.lineage.policy_version for e in ds.examples} == {cfg.tune.data.policy_version}
    assert sum(e.target == cfg.tune.data.refusal_target for e in ds.examples) == 0  # all have references


rung = functools.partial(run_rung, RUNG_THREADS="1")


def test_cli_data_build_show_list(project: Path):
    r = rung("data", "list", cwd=project)
    assert r.returncode == 0 and "no datasets" in r.stdout
    r = rung("data", "build", "-c", "rung.yaml", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    version = next(line.split()[1].rstrip(":") for line in r.stdout.splitlines() if line.startswith("dataset "))
    assert (project / ".rung" / "datasets" / version / "examples.jsonl").exists()
    assert "counter_examples" in r.stdout and "3 examples" in r.stdout

    r = rung("data", "show", cwd=project)
    assert r.returncode == 0, r.stderr
    assert version in r.stdout and "language (stopword heuristic)" in r.stdout and "must-refuse" in r.stdout
    r = rung("data", "show", version[:6], cwd=project)
    assert r.returncode == 0 and version in r.stdout
    r = rung("data", "show", f".rung/datasets/{version}", "-c", "missing.yaml", cwd=project)
    assert r.returncode == 0 and version in r.stdout  # a folder needs no rung.yaml
    r = rung("data", "list", cwd=project)
    assert r.returncode == 0 and version in r.stdout

    write_jsonl(project / "leak.jsonl", [{"prompt": EVAL[1]["input"], "completion": "EUR 4.99."}])
    r = rung("data", "build", "--file", "leak.jsonl", cwd=project)
    assert r.returncode == 1 and "error:" in r.stderr and "leakage" in r.stderr
    r = rung("data", "build", "--file", "leak.jsonl", "--allow", "leakage", cwd=project)
    assert r.returncode == 0, r.stderr
    r = rung("data", "show", "nope", cwd=project)
    assert r.returncode == 1 and "no dataset matches 'nope'" in r.stderr
