"""The rollout section below a deployment's monitoring panel (monitoring.views._rollout, rollout_settings,
rollout_decide; templates/monitoring/_rollout.html): how new versions arrive in words, the running rollout's
live model and candidate side by side since its step began, the last ended ones, Promote now / Abort and the
settings form for managers only. DB rows only: the operations the buttons make are asserted, never run."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployment.choices import DeploymentStatus, OperationKind, RolloutMode, RolloutState
from deployment.models import Deployment, Rollout
from monitoring.choices import Variant
from monitoring.models import Sample

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def deployment(owner):
    solution = SolutionFactory(owner=owner, name="Iris")
    revision = RevisionFactory(solution=solution, version="1.0.0")
    return DeploymentFactory(name="iris", revision=revision, created_by=owner, status=DeploymentStatus.RUNNING,
                             endpoint_url="http://127.0.0.1:9", follows=solution, rollout_mode=RolloutMode.CANARY)


def make_rollout(deployment, *, mode=RolloutMode.CANARY, state=RolloutState.RUNNING, generation=2, **extra):
    candidate = RevisionFactory(solution=deployment.revision.solution, version=extra.pop("version", "1.1.0"))
    weights = [100] if mode == RolloutMode.SHADOW else [10, 50]
    return Rollout.objects.create(deployment=deployment, revision=candidate, previous_revision=deployment.revision,
                                  mode=mode, weights=weights, gates=deployment.gates, state=state,
                                  candidate_generation=generation, **extra)


def sample(deployment, minutes_ago, variant, generation, requests, errors, p50, p99, agreement=None):
    Sample.objects.create(deployment=deployment, at=timezone.now() - timedelta(minutes=minutes_ago), variant=variant,
                          generation=generation, requests=requests, errors=errors, p50_ms=p50, p99_ms=p99,
                          agreement_rate=agreement)


def url(name: str, deployment, *args) -> str:
    return reverse(f"monitoring:{name}", args=[deployment.pk, *args])


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def row(response, heading: str) -> list[str]:
    """The cells of the variants table's row headed `heading`: [live, candidate]."""
    table = response.content.decode().split('class="monitoring-rollout__variants"')[1].split("</table>")[0]
    found = re.search(rf'<th scope="row">{heading}</th>(.*?)</tr>', table, re.S).group(1)
    return [html.unescape(cell.strip()) for cell in re.findall(r"<td>(.*?)</td>", found, re.S)]


def field_block(response, field_id: str) -> str:
    page = response.content.decode()
    start = page.rindex('<div class="field', 0, page.index(f'id="{field_id}"'))
    return html.unescape(page[start:page.index("</div>", page.index(f'id="{field_id}"'))])


# ---------------------------------------------------------------- what it shows


def test_the_running_canary_and_the_live_model_side_by_side_since_the_step_began(client_for, owner, deployment):
    rollout = make_rollout(deployment, step_started_at=timezone.now() - timedelta(minutes=10),
                           progress="40 of 100 requests answered by the candidate; waiting for more")
    sample(deployment, 20, Variant.LIVE, 1, 5000, 500, 1, 2)  # before the step: not counted
    sample(deployment, 20, Variant.CANARY, 2, 5000, 500, 1, 2)
    sample(deployment, 5, Variant.LIVE, 1, 900, 9, 3, 12)
    sample(deployment, 2, Variant.LIVE, 1, 100, 1, 4, 15)
    sample(deployment, 5, Variant.CANARY, 2, 90, 0, 5, 20)
    sample(deployment, 2, Variant.CANARY, 2, 10, 2, 6, 25)
    sample(deployment, 1, Variant.CANARY, 1, 999, 999, 99, 99)  # another generation's candidate: not this one
    section = client_for(owner).get(url("settings", deployment), headers=HTMX)
    assert section.status_code == 200
    said = text(section)
    assert "Running: Iris 1.1.0" in said
    assert "Canary at 10 % of the requests (step 1 of 2)" in said
    assert "40 of 100 requests answered by the candidate; waiting for more" in said
    assert "Live Iris 1.0.0" in said and "Candidate Iris 1.1.0" in said
    assert row(section, "Requests") == ["1000", "100"]
    assert row(section, "Error rate") == ["1.0 %", "2.0 %"]
    assert row(section, "p50 latency") == ["4 ms", "6 ms"]
    assert row(section, "p99 latency") == ["15 ms", "25 ms"]
    table = section.content.decode().split('class="monitoring-rollout__variants"')[1].split("</table>")[0]
    assert "Agreement" not in table  # a canary's answers are not compared
    assert f'data-rollout="{rollout.pk}"' in section.content.decode()


def test_a_shadow_shows_its_agreement_weighted_by_requests(client_for, owner, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(rollout_mode=RolloutMode.SHADOW)
    make_rollout(deployment, mode=RolloutMode.SHADOW, step_started_at=timezone.now() - timedelta(minutes=10))
    sample(deployment, 5, Variant.LIVE, 1, 300, 0, 3, 10)
    sample(deployment, 5, Variant.SHADOW, 2, 100, 0, 5, 20, agreement=1.0)
    sample(deployment, 2, Variant.SHADOW, 2, 300, 0, 5, 21, agreement=0.8)
    section = client_for(owner).get(url("settings", deployment), headers=HTMX)
    assert row(section, "Agreement with the live model") == ["—", "85.0 %"]
    assert "Shadow: it answers a copy of every request in the background (step 1 of 1)" in text(section)
    assert "Shadow: a new ready version first answers a copy of every request in the background" in text(section)


def test_the_mode_and_gates_in_words_and_the_last_ended_rollouts(client_for, owner, operator, deployment):
    make_rollout(deployment, state=RolloutState.ROLLED_BACK, version="1.1.0", finished=timezone.now(),
                 reason="canary at 10 % (step 1 of 2): p99 latency 1500 ms over the 1000 ms allowed; rolled back")
    make_rollout(deployment, state=RolloutState.ABORTED, version="1.2.0", finished=timezone.now(),
                 decided_by=operator, reason="aborted by operator at 50 % (step 2 of 2)")
    said = text(client_for(owner).get(url("settings", deployment), headers=HTMX))
    assert "Canary: a new ready version first answers a share of the requests (10 %, then 50 %)" in said
    assert "Error rate at most 5 %" in said and "p99 latency at most 1000 ms" in said
    assert "At least 100 requests answered by the candidate and 3 collection rounds per step" in said
    assert "Accuracy from feedback: not judged" in said
    assert "Rolled back Iris 1.1.0 · canary" in said
    assert "Canary at 10 % (step 1 of 2): p99 latency 1500 ms over the 1000 ms allowed; rolled back" in said
    assert "Aborted Iris 1.2.0 · canary" in said and "by operator" in said
    assert "Running:" not in said


def test_a_deployment_that_follows_no_model_is_told_how_to(client_for, owner, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(follows=None, rollout_mode=RolloutMode.SWAP)
    said = text(client_for(owner).get(url("settings", deployment), headers=HTMX))
    assert "Rollouts apply to deployments that follow their model: this one does not" in said
    assert "deployed with “Follow latest” ticked" in said and '"follow": true' in said
    assert "Swap at once: a new ready version replaces the live model" in said
    followed = text(client_for(owner).get(url("settings", DeploymentFactory(
        created_by=owner, follows=deployment.revision.solution)), headers=HTMX))
    assert "Rollouts apply to deployments that follow their model" not in followed


# ---------------------------------------------------------------- who sees and does what


@pytest.mark.parametrize("persona", ["owner", "operator"])
def test_managers_see_the_form_and_the_buttons(request, client_for, deployment, persona):
    rollout = make_rollout(deployment, step_started_at=timezone.now())
    body = client_for(request.getfixturevalue(persona)).get(url("settings", deployment), headers=HTMX).content.decode()
    assert f'hx-post="{url("rollout-promote", deployment, rollout.pk)}"' in body
    assert f'hx-post="{url("rollout-abort", deployment, rollout.pk)}"' in body
    assert f'action="{url("rollout-settings", deployment)}"' in body
    assert 'name="rollout-max_error_rate" value="5"' in body  # a share shown as a percentage
    assert 'name="rollout-steps" value="10, 50"' in body


def test_one_who_sees_but_may_not_manage_gets_no_form_or_buttons(client_for, owner, deployment, monkeypatch):
    """Nobody today sees a deployment they may not manage; the day someone does, the template shows what
    can_manage decides and the views refuse the rest."""
    from monitoring import views
    rollout = make_rollout(deployment, step_started_at=timezone.now())
    monkeypatch.setattr(views, "can_manage", lambda user, deployment: False)
    client = client_for(owner)
    section = client.get(url("settings", deployment), headers=HTMX)
    assert "Running: Iris 1.1.0" in text(section)
    assert "Promote now" not in text(section) and "rollout-settings" not in section.content.decode()
    assert "may promote, abort and change how new versions roll out" in text(section)
    assert client.post(url("rollout-promote", deployment, rollout.pk)).status_code == 403
    assert client.post(url("rollout-settings", deployment), {"rollout-mode": "shadow"}).status_code == 403
    assert not deployment.operations.exists()
    assert Deployment.objects.get(pk=deployment.pk).rollout_mode == RolloutMode.CANARY


def test_another_user_gets_404_and_an_anonymous_visitor_is_sent_to_sign_in(client_for, other_user, deployment):
    rollout = make_rollout(deployment, step_started_at=timezone.now())
    for user, check in ((other_user, lambda r: r.status_code == 404),
                        (None, lambda r: r.status_code == 302 and r["Location"].startswith(reverse("accounts:login")))):
        client = client_for(user)
        assert check(client.get(url("settings", deployment), headers=HTMX))
        assert check(client.post(url("rollout-promote", deployment, rollout.pk)))
        assert check(client.post(url("rollout-abort", deployment, rollout.pk)))
        assert check(client.post(url("rollout-settings", deployment), {"rollout-mode": "shadow"}))
    assert not deployment.operations.exists()
    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.RUNNING


# ---------------------------------------------------------------- the settings form


def settings_body(**changes):
    body = {"rollout-mode": "canary", "rollout-steps": "10, 50", "rollout-max_error_rate": "5",
            "rollout-max_p99_ms": "1000", "rollout-min_agreement": "90", "rollout-min_quality": "",
            "rollout-min_feedback": "30", "rollout-min_requests": "100", "rollout-step_rounds": "3"}
    body.update({f"rollout-{name}": value for name, value in changes.items()})
    return body


def test_saving_the_settings_converts_percentages_and_keeps_only_what_differs(client_for, owner, deployment):
    response = client_for(owner).post(url("rollout-settings", deployment), settings_body(
        mode="shadow", steps="5, 20, 60", max_error_rate="2", min_agreement="95", min_quality="80"), headers=HTMX)
    assert response.status_code == 200
    deployment.refresh_from_db()
    assert deployment.rollout_mode == RolloutMode.SHADOW and deployment.rollout_steps == [5, 20, 60]
    assert deployment.rollout_gates == {"max_error_rate": 0.02, "min_agreement": 0.95, "min_quality": 0.8}
    said = text(response)
    assert "Saved: the next new version rolls out this way" in said
    assert "Error rate at most 2 %" in said and "Accuracy from feedback at least 80 %, once 30 answers" in said


@pytest.mark.parametrize(("field", "value", "says"), [
    ("max_error_rate", "150", "less than or equal to 100"),
    ("min_agreement", "-1", "greater than or equal to 0"),
    ("steps", "50, 10", "rising weights"),  # refused by set_rollout_settings, put beside its field
    ("steps", "ten", "Type the weights as numbers separated by commas"),
    ("min_requests", "0", "greater than or equal to 1"),
])
def test_a_bad_value_is_shown_beside_its_field_and_changes_nothing(client_for, owner, deployment, field, value, says):
    response = client_for(owner).post(url("rollout-settings", deployment),
                                      settings_body(mode="shadow", **{field: value}), headers=HTMX)
    assert response.status_code == 200  # htmx swaps only a 2xx answer in
    block = field_block(response, f"id_rollout-{field}")
    assert "field--error" in block and says in block
    assert "Saved" not in text(response)
    deployment.refresh_from_db()
    assert (deployment.rollout_mode, deployment.rollout_steps, deployment.rollout_gates) == (
        RolloutMode.CANARY, [10, 50], {})


def test_without_javascript_a_save_goes_back_to_the_page_and_an_error_shows_it_400(client_for, owner, deployment):
    client = client_for(owner)
    saved = client.post(url("rollout-settings", deployment), settings_body(max_p99_ms="250"))
    assert saved.status_code == 302 and saved["Location"] == f"{url('panel', deployment)}#monitoring-rollout"
    refused = client.post(url("rollout-settings", deployment), settings_body(max_p99_ms="0"))
    assert refused.status_code == 400 and "<html" in refused.content.decode()
    assert "field--error" in field_block(refused, "id_rollout-max_p99_ms")
    assert Deployment.objects.get(pk=deployment.pk).rollout_gates == {"max_p99_ms": 250.0}


# ---------------------------------------------------------------- Promote now, Abort


def test_promote_now_asks_the_runners_to_promote_and_answers_the_section(client_for, operator, deployment):
    rollout = make_rollout(deployment, step_started_at=timezone.now())
    response = client_for(operator).post(url("rollout-promote", deployment, rollout.pk), headers=HTMX)
    assert response.status_code == 200 and 'id="monitoring-rollout"' in response.content.decode()
    assert "Promoting: the candidate becomes the live model" in text(response)
    operation = deployment.operations.get()
    assert (operation.kind, operation.rollout_id, operation.requested_by) == (OperationKind.PROMOTE, rollout.pk,
                                                                              operator)
    rollout.refresh_from_db()
    assert rollout.decided_by == operator and rollout.reason.startswith("promoted by operator at 10 %")


def test_abort_ends_the_rollout_and_without_javascript_goes_back_to_the_page(client_for, owner, deployment):
    rollout = make_rollout(deployment, step_started_at=timezone.now())
    response = client_for(owner).post(url("rollout-abort", deployment, rollout.pk))
    assert response.status_code == 302 and response["Location"] == f"{url('panel', deployment)}#monitoring-rollout"
    assert deployment.operations.get().kind == OperationKind.ABORT
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ABORTED and rollout.decided_by == owner
    said = text(client_for(owner).get(url("settings", deployment), headers=HTMX))
    assert "Running:" not in said and "Aborted Iris 1.1.0" in said


def test_promote_before_the_runners_hold_the_candidate_says_why(client_for, owner, deployment):
    rollout = make_rollout(deployment, generation=None)
    client = client_for(owner)
    section = client.get(url("settings", deployment), headers=HTMX).content.decode()
    assert re.search(r"<button[^>]*disabled[^>]*>\s*Promote now", section)
    response = client.post(url("rollout-promote", deployment, rollout.pk), headers=HTMX)
    assert "The runners do not hold the candidate yet" in text(response)
    assert client.post(url("rollout-promote", deployment, rollout.pk)).status_code == 409
    assert not deployment.operations.exists()


def test_an_ended_rollout_cannot_be_aborted_again(client_for, owner, deployment):
    rollout = make_rollout(deployment, state=RolloutState.PROMOTED, finished=timezone.now())
    response = client_for(owner).post(url("rollout-abort", deployment, rollout.pk), headers=HTMX)
    assert "This rollout has ended (promoted)" in text(response)
    assert not deployment.operations.exists()


def test_a_rollout_of_another_deployment_is_404(client_for, owner, deployment):
    other = make_rollout(DeploymentFactory(created_by=owner), step_started_at=timezone.now())
    assert client_for(owner).post(url("rollout-abort", deployment, other.pk)).status_code == 404
    assert Rollout.objects.get(pk=other.pk).state == RolloutState.RUNNING
