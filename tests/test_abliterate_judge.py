"""The refusal judge: the pinned prompt round-trips through a real local server (the bundled
SmolLM2 under ``transformers serve``); Cohen's kappa matches a brute-force count; labels parse."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abliterate.evaluate.judge import Judge, agreement, judged_rates, load_labelled
from abliterate.evaluate.judge_prompt import JUDGE_PROMPT_VERSION, LABELS, judge_messages, parse_label
from abliterate.evaluate.refusal_stats import cohens_kappa, rate_with_ci, wilson


def brute_kappa(a: list[str], b: list[str]) -> float:
    """kappa = (p_o - p_e) / (1 - p_e), counting every pair of categories by hand."""
    n = len(a)
    cats = sorted(set(a) | set(b))
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    return 1.0 if p_e == 1 else (p_o - p_e) / (1 - p_e)


@given(st.lists(st.tuples(st.sampled_from("RDPC"), st.sampled_from("RDPC")), min_size=2, max_size=12))
@settings(max_examples=200, deadline=None)
def test_kappa_matches_brute_force(pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    assert math.isclose(cohens_kappa(a, b), brute_kappa(a, b), abs_tol=1e-9)


def test_kappa_on_every_2x2_table_up_to_four_items():
    for n in range(2, 5):
        for a in itertools.product("yn", repeat=n):
            for b in itertools.product("yn", repeat=n):
                assert math.isclose(cohens_kappa(list(a), list(b)), brute_kappa(list(a), list(b)), abs_tol=1e-9)


def test_wilson_interval_known_values_and_rates():
    lo, hi = wilson(0, 15)
    assert lo == 0.0 and math.isclose(hi, 0.2039, abs_tol=1e-4)
    lo, hi = wilson(8, 10)
    assert math.isclose(lo, 0.4902, abs_tol=1e-4) and math.isclose(hi, 0.9433, abs_tol=1e-4)
    r = rate_with_ci([True, False, False, True])
    assert r["rate"] == 0.5 and r["k"] == 2 and r["n"] == 4 and r["ci"][0] < 0.5 < r["ci"][1]


def test_labelled_set_covers_the_four_kinds():
    rows = load_labelled()
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    for label in ("refusal", "delayed_refusal", "partial", "compliance"):
        assert sum(r["label"] == label for r in rows) >= 12


def test_label_parsing_and_prompt():
    assert parse_label("Delayed refusal.") == "DELAYED_REFUSAL"
    assert parse_label("PARTIAL COMPLIANCE") == "PARTIAL"
    assert parse_label("Label: COMPLIANCE") == "COMPLIANCE"
    assert parse_label("nonrefusal") is None and parse_label("") is None
    msgs = judge_messages("List files", "I can't.")
    assert msgs[0]["role"] == "system" and all(lab in msgs[0]["content"] for lab in LABELS)
    assert "List files" in msgs[1]["content"] and "I can't." in msgs[1]["content"]


@pytest.fixture(scope="module")
def judge_server(smollm2_dir, tmp_path_factory):
    """One ``transformers serve`` of the bundled model for the module (stopped at the end)."""
    from runners.servers import make_server

    server = make_server("transformers", smollm2_dir, name="judge",
                         log_path=tmp_path_factory.mktemp("judge") / "server.log")
    with server:
        yield server


@pytest.mark.model
@pytest.mark.slow
def test_judge_prompt_round_trips_through_a_real_server(judge_server):
    judge = Judge(judge_server.base_url, judge_server.model_name, max_tokens=8, workers=2)
    rows = load_labelled()
    picked = [rows[0], rows[16], rows[32], rows[48]]  # one of each kind
    ag = agreement(judge, picked)
    assert ag["prompt_version"] == JUDGE_PROMPT_VERSION and ag["n"] == 4 and ag["model"] == judge.model
    assert all(item["raw"] for item in ag["items"])  # the server answered every request
    assert all(item["judge"] in (*LABELS, None) for item in ag["items"])
    for key in ("kappa_binary", "kappa_4_labels", "markers_kappa_binary"):
        assert -1.0 <= ag[key] <= 1.0
    assert ag["unparsed"] == sum(item["judge"] is None for item in ag["items"])
    verdicts = judge.label_many([(r["prompt"], r["response"]) for r in picked[:2]])
    assert [v.raw[:200] for v in verdicts] == [item["raw"] for item in ag["items"][:2]]  # greedy: reproducible
    rates = judged_rates(verdicts)
    assert rates["n"] + rates["unparsed"] == 2 and rates["ci"][0] <= rates["rate"] <= rates["ci"][1]


def test_unreachable_judge_is_one_clear_error():
    from abliterate.errors import AbliterationError

    judge = Judge("http://127.0.0.1:9", "nobody", timeout_s=2)
    with pytest.raises(AbliterationError, match="the judge at http://127.0.0.1:9"):
        judge.label("x", "y")
