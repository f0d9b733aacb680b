"""Scoring an alert 0–100: the LLM's four sub-scores with reasons, or the offline rules.

The LLM only scores. Its answer is constrained by the JSON schema (a grammar on servers that
have one), validated, retried once, then replaced by the offline rules' card, which says why.
The total, budget and plan are computed here from the sub-scores and the alert rules; nothing
it writes can pick a target or a step. Alert text goes to it as delimited data, never as
instructions.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from pydantic import BaseModel, Field

from ambient.clients.llm import LLMClient, data_block
from ambient.remediation.alerts import Alert
from ambient.remediation.scores import (
    AlertRule,
    ScoreCard,
    ScoreDimensions,
    match_rule,
    offline_score,
    score_card,
)

SYSTEM = (
    "You score operations alerts on Kubernetes workloads for a graded remediation system. "
    "Return four sub-scores from 0 to 100, each with a one-sentence reason: impact (how many "
    "users or services are affected), severity (how bad the failure is), importance (business "
    "importance of the service), time_sensitivity (how fast it gets worse if left alone). "
    "You only score: you never choose actions, targets or commands."
)


class LLMDimension(BaseModel):
    # Bounded in the schema itself: servers with JSON-schema grammars (llama-server) cannot
    # produce anything else, and any other answer is invalid (retried, then the offline rules).
    score: int = Field(ge=0, le=100, description="0 to 100")
    reason: str = Field(max_length=300, description="one sentence")


class LLMScore(BaseModel):
    impact: LLMDimension
    severity: LLMDimension
    importance: LLMDimension
    time_sensitivity: LLMDimension


@dataclass
class ScoredAlert:
    """A score card, the alert rule that shaped it (its plan's too), and how it came about:
    LLM requests made, why the offline rules answered (what bench measures)."""

    card: ScoreCard
    rule: AlertRule | None
    attempts: int = 0
    failure: str | None = None


async def score_alert(
    alert: Alert, rules: list[AlertRule], llm: LLMClient | None, clusters: Collection[str] = ()
) -> ScoredAlert:
    """The alert's score card; offline rules when no LLM is configured or it gives no answer.
    ``clusters``: the other names of the alert's cluster its rules may name it by."""
    rule = match_rule(alert, rules, clusters)
    if llm is None or llm.offline:
        return ScoredAlert(offline_score(alert, rules, clusters), rule)
    fields = alert.model_dump(mode="json", exclude={"verify"})
    user = "Score this alert.\n" + data_block("alert", json.dumps(fields, ensure_ascii=False))
    outcome = await llm.answer(system=SYSTEM, user=user, schema=LLMScore)
    answer, failure, attempts = outcome.value, outcome.failure, outcome.attempts
    if answer is None:
        # Recorded as the offline rules' card, with why: never as the model's score.
        card = offline_score(alert, rules, clusters)
        card.reasons.insert(
            0, f"the LLM gave no valid answer ({failure}): offline rules scored this alert"
        )
        return ScoredAlert(card, rule, attempts, failure)
    # The answer's schema bounds each score and reason (LLMScore): only the spaces go.
    dimensions = ScoreDimensions.model_validate(
        {name: {"score": d.score, "reason": d.reason.strip()} for name, d in answer}
    )
    return ScoredAlert(score_card(dimensions, rule, "llm"), rule, attempts)
