"""Evaluation metrics: a user's rule (with clear messages for bad or runaway patterns), length
against the reference, MiniLM similarity, and the per-configuration summary."""
import time

import pytest

from studio.evaluation.metrics import Rule, RuleError, length_ratio, similarities, summarize


def test_a_rule_checks_each_reply_and_bad_rules_say_why():
    rule = Rule.parse(r"-Sam\s*$")
    assert rule.passes("Thanks for watching! -Sam") and not rule.passes("Thanks for watching!")
    for bad, reason in [("", "empty"), ("(unclosed", "not a valid regular expression"), ("x" * 501, "longer than")]:
        with pytest.raises(RuleError, match=reason):
            Rule.parse(bad)


def test_a_runaway_rule_stops_quickly_with_a_message():
    rule = Rule.parse(r"(a|aa)+$")
    started = time.monotonic()
    with pytest.raises(RuleError, match="took longer"):
        rule.passes("a" * 5000 + "!")
    assert time.monotonic() - started < 5


def test_length_and_similarity_against_the_reference():
    assert length_ratio("one two three four", "one two") == 2.0 and length_ratio("x", "  ") is None
    sims = similarities(["Fine-tuning needs 50 to 100 good examples.", "I like bread.", ""],
                        ["You need about 50-100 examples to fine-tune.", "You need about 50-100 examples.", "x"])
    assert sims[0] > 0.6 > sims[1] and sims[2] is None
    summary = summarize([True, False, None], [2.0, 1.0, None], sims)
    assert summary.rows == 3 and summary.rule_passed == 1 and summary.mean_length_ratio == 1.5
    assert summary.mean_similarity == pytest.approx((sims[0] + sims[1]) / 2, abs=1e-4)
