"""Guarded rollouts, judged after each collection round: a canary or shadow candidate's samples since its
step began against the gates its rollout took when it began (deployment.choices.DEFAULT_ROLLOUT_GATES, the
owner's overrides). One failing gate rolls it back; every gate holding over enough requests and rounds moves
it to the next weight, and after the last one promotes it. Each decision is recorded on the rollout (its
reason, with the figures) and told to the deployment's creator; the runner changes are the deployment's
operations (deployment.services: next_rollout_step, promote_rollout, abort_rollout).

Why the figures are read as they are: a sample holds what the candidate answered since the round before, so
requests and errors are summed over the step; its p99 is the runner's own since the candidate was set
(quantiles do not add up), so the latest one is judged; a shadow's agreement is weighted by the requests of
each sample; quality is the runner's accuracy from feedback for the candidate's generation, judged only once
`min_feedback` answers have their truth (a handful of labels says nothing)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from deployment import services as deployments
from deployment.choices import RolloutMode, RolloutState
from deployment.models import Deployment, Rollout
from marketplace import services as marketplace_services
from marketplace.choices import NotificationKind
from monitoring.selectors import Figures, rollout_figures

log = logging.getLogger(__name__)

WAIT, NEXT, PROMOTE, ROLL_BACK = "wait", "next", "promote", "roll back"


@dataclass
class Verdict:
    decision: str
    text: str


def advance(deployment: Deployment) -> Verdict | None:
    """Judge the deployment's running rollout once (the collector calls it after each round) and act on the
    verdict. None when there is nothing to judge: no rollout, or its runner change has not ended yet."""
    rollout = (Rollout.objects.filter(deployment=deployment, state=RolloutState.RUNNING)
               .select_related("deployment__created_by", "revision__solution").first())
    if rollout is None or rollout.step_started_at is None or deployments.busy(deployment):
        return None
    verdict = judge(rollout, rollout_figures(rollout))
    try:
        _act(rollout, verdict)
    except deployments.DeploymentRefused as exc:  # busy, or ended meanwhile (by hand): the next round sees
        log.info("rollout %s: %s not done now: %s", rollout.pk, verdict.decision, exc)
        return None
    return verdict


def judge(rollout: Rollout, figures: Figures) -> Verdict:
    """The rollout's verdict on `figures`: the first gate that fails (roll back), or what the step still
    waits for, or, every gate holding over enough requests and rounds, the next step or the promotion."""
    gates = rollout.gates
    where = f"{rollout.mode} at {rollout.weight} % (step {rollout.step + 1} of {len(rollout.weights)})"
    failed = _failing_gate(rollout, figures)
    if failed:
        return Verdict(ROLL_BACK, f"{where}: {failed} (the live model: {_pct(figures.live_error_rate)} errors over "
                                  f"{figures.live_requests} requests); rolled back")
    waiting = _waiting_for(rollout, figures)
    if waiting:
        return Verdict(WAIT, f"{where}: {waiting}")
    held = f"every gate held over {figures.requests} requests ({_held(figures)}){_quality_note(gates, figures)}"
    if figures.rounds < gates["step_rounds"]:
        return Verdict(WAIT, f"{where}: {held} so far; round {figures.rounds} of {gates['step_rounds']}")
    return Verdict(PROMOTE if rollout.last_step else NEXT, f"{where}: {held} in {figures.rounds} rounds")


def _failing_gate(rollout: Rollout, figures: Figures) -> str | None:
    """The first gate the figures fail, said with its figure and bound; None while every one holds."""
    gates = rollout.gates
    max_error_rate = gates["max_error_rate"]
    # Enough errors to fail the gate whatever the rest of the step's requests do: no need to wait for them.
    if figures.errors > max_error_rate * max(gates["min_requests"], figures.requests):
        return (f"error rate {_pct(figures.error_rate)} ({figures.errors} of {figures.requests} requests) over the "
                f"{_pct(max_error_rate)} allowed")
    if figures.requests < gates["min_requests"]:
        return None  # the other gates are not judged on a handful of requests
    if figures.p99_ms is not None and figures.p99_ms > gates["max_p99_ms"]:
        return f"p99 latency {figures.p99_ms:g} ms over the {gates['max_p99_ms']:g} ms allowed"
    agreement = figures.agreement
    if rollout.mode == RolloutMode.SHADOW and agreement is not None and agreement < gates["min_agreement"]:
        return f"agreement with the live model {_pct(agreement)} under the {_pct(gates['min_agreement'])} required"
    found = figures.quality
    if (gates.get("min_quality") is not None and found is not None and found[2] >= gates["min_feedback"]
            and found[1] < gates["min_quality"]):
        return (f"accuracy of {found[0]} {_pct(found[1])} over {found[2]} answers with feedback under the "
                f"{_pct(gates['min_quality'])} required")
    return None


def _waiting_for(rollout: Rollout, figures: Figures) -> str:
    """What the step needs before its gates can be said to hold ("" when nothing)."""
    min_requests = rollout.gates["min_requests"]
    if not figures.requests:
        return f"no traffic yet, waiting (no decision before {min_requests} requests)"
    if figures.requests < min_requests:
        return f"{figures.requests} of {min_requests} requests answered by the candidate; waiting for more"
    if rollout.mode == RolloutMode.SHADOW and figures.agreement is None:
        return "no answer compared with the live model's yet"
    return ""


def _quality_note(gates: dict, figures: Figures) -> str:
    found = figures.quality
    if gates.get("min_quality") is None or (found is not None and found[2] >= gates["min_feedback"]):
        return ""
    return f"; quality not judged ({found[2] if found else 0} of {gates['min_feedback']} answers with feedback)"


def _held(figures: Figures) -> str:
    said = [f"error rate {_pct(figures.error_rate)}"]
    if figures.p99_ms is not None:
        said.append(f"p99 {figures.p99_ms:g} ms")
    if figures.agreement is not None:
        said.append(f"agreement {_pct(figures.agreement)}")
    if figures.quality is not None:
        said.append(f"accuracy {_pct(figures.quality[1])}")
    return ", ".join(said)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _act(rollout: Rollout, verdict: Verdict) -> None:
    if verdict.decision == WAIT:
        deployments.note_rollout_progress(rollout, verdict.text)
        return
    if verdict.decision == ROLL_BACK:
        deployments.abort_rollout(rollout, reason=verdict.text, state=RolloutState.ROLLED_BACK)
        what = "rolled back"
    elif verdict.decision == PROMOTE:
        deployments.promote_rollout(rollout, reason=verdict.text)
        what = "promoted"
    else:
        deployments.next_rollout_step(rollout, verdict.text)
        what = f"raised to {rollout.weights[rollout.step + 1]} %"
    _tell(rollout, what, verdict.text)


def _tell(rollout: Rollout, what: str, reason: str) -> None:
    deployment, revision = rollout.deployment, rollout.revision
    marketplace_services.notify(
        deployment.created_by, NotificationKind.DEPLOYMENT,
        f"{deployment}: {rollout.mode} of {revision.solution.name} {revision.version} {what}"[:200],
        url=f"/deployments/{deployment.pk}/", message=reason)
