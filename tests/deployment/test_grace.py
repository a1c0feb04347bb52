"""A stopped deployment is kept, restartable, for its grace period. Who may destroy it sooner is decided
once (deployment.selectors.can_end_grace_early): admins always; whoever created it when the site allows
it (SiteSettings.owners_may_end_grace_early, off by default); nobody else. A refused early Destroy is an
explanation with the date (information on the page, 409 grace_period_not_over in the API), never an error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from acumos_portal.accounts.models import SiteSettings
from deployment import selectors, services
from deployment.choices import DeploymentStatus, OperationKind
from deployment.models import Operation

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db

DUE = timezone.now().replace(microsecond=0) + timedelta(days=1)
# persona -> (may end it early with the setting off, with it on); None: does not see the deployment (404)
MATRIX = {
    "owner": (False, True),
    "other_user": (None, None),
    "operator": (False, False),  # runs every deployment, but the grace period is its creator's
    "admin_user": (True, True),
}


@pytest.fixture
def stopped(owner):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="HousePrice"), version="1.0.0")
    return DeploymentFactory(name="", revision=revision, created_by=owner, status=DeploymentStatus.STOPPED,
                             stopped_at=timezone.now(), destroy_after=DUE)


def allow_owners(on: bool) -> None:
    SiteSettings.objects.update_or_create(pk=1, defaults={"owners_may_end_grace_early": on})


def test_the_setting_is_off_by_default():
    assert SiteSettings.current().owners_may_end_grace_early is False
    assert selectors.owners_may_end_grace_early() is False


@pytest.mark.parametrize("persona", MATRIX)
@pytest.mark.parametrize("setting", [False, True], ids=["owners-may-not", "owners-may"])
def test_who_may_end_the_grace_period_early(request, stopped, persona, setting, client_for):
    allow_owners(setting)
    user = request.getfixturevalue(persona)
    expected = MATRIX[persona][setting]
    assert selectors.can_end_grace_early(user, stopped) is bool(expected)

    response = client_for(user).post(f"/api/v1/deployments/{stopped.pk}/destroy", {"force": True},
                                     content_type="application/json")
    if expected is None:
        assert response.status_code == 404
    elif expected:
        assert response.status_code == 202, response.content
        assert Operation.objects.filter(deployment=stopped, kind=OperationKind.DESTROY).exists()
    else:
        assert response.status_code == 409, response.content
        error = response.json()["error"]
        assert error["code"] == "grace_period_not_over" and error["details"]["destroy_after"] == DUE.isoformat()
        assert f"kept, restartable, until {DUE:%Y-%m-%d %H:%M} UTC" in error["message"]
        assert not Operation.objects.filter(kind=OperationKind.DESTROY).exists()


def test_nobody_destroys_early_without_asking_to(admin_user, stopped):
    with pytest.raises(services.GracePeriodNotOver, match="To destroy it now, ask with force"):
        services.destroy(stopped, admin_user)


def test_the_refusal_says_who_may_destroy_it_sooner(owner, operator, stopped):
    with pytest.raises(services.GracePeriodNotOver, match="Only an admin may destroy it sooner"):
        services.destroy(stopped, owner, force=True)
    allow_owners(True)
    with pytest.raises(services.GracePeriodNotOver, match="Only whoever created it, or an admin, may"):
        services.destroy(stopped, operator, force=True)


def test_after_the_grace_period_whoever_may_change_it_destroys_it(operator, stopped):
    stopped.destroy_after = timezone.now() - timedelta(seconds=1)
    stopped.save()
    assert selectors.destroy_waits(operator, stopped) is False
    assert services.destroy(stopped, operator).kind == OperationKind.DESTROY


def test_the_owners_page_says_when_it_goes_and_offers_destroy_now_once_the_site_allows(owner, stopped, client_for):
    client = client_for(owner)
    page = client.get(f"/deployments/{stopped.pk}/").content.decode()
    assert f"Kept, restartable, until {DUE:%Y-%m-%d %H:%M} UTC; destroyed then." in page
    assert "Only an admin may destroy it sooner." in page and "Destroy now" not in page

    allow_owners(True)
    page = client.get(f"/deployments/{stopped.pk}/").content.decode()
    assert "Destroy now</button>" in page and 'name="force" value="1"' in page
    assert f"before its grace period ends ({DUE:%Y-%m-%d %H:%M} UTC)?" in page  # its confirmation
    response = client.post(f"/deployments/{stopped.pk}/destroy/", {"force": "1"})
    assert response.status_code == 302
    assert Operation.objects.filter(deployment=stopped, kind=OperationKind.DESTROY).exists()


def test_a_refused_early_destroy_on_the_page_is_information_with_the_date(owner, stopped, client_for):
    client = client_for(owner)
    response = client.post(f"/deployments/{stopped.pk}/destroy/", {"force": "1"})  # an old page, say
    said = [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]
    assert said == [("info", f"HousePrice 1.0.0 is kept, restartable, until {DUE:%Y-%m-%d %H:%M} UTC (its grace "
                             "period) and is destroyed then by itself; start it again to keep it. Only an admin may "
                             "destroy it sooner (or allow owners to, in Manage → Site settings).")]
    page = client.get(response["Location"]).content.decode()
    assert "alert--error" not in page


def test_the_site_settings_page_offers_the_choice(admin_user, client_for):
    client = client_for(admin_user)
    page = client.get("/manage/site/").content.decode()
    assert 'name="owners_may_end_grace_early"' in page and "Owners may end a deployment&#x27;s grace period" in page
    client.post("/manage/site/", {"site_name": "", "onboarding_open": "on", "owners_may_end_grace_early": "on"})
    assert SiteSettings.current().owners_may_end_grace_early is True
