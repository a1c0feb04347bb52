"""Every kind of page, in Chromium, under the Content-Security-Policy every answer carries: each persona
opens the pages it has (browse, a model and its version, My models, onboarding and a job, a deployment,
notifications, the account pages, Manage, the deployment targets, the Django admin, the API docs, a 404)
and works what htmx drives on them (filtering, sorting and searching the browse page, a favorite, Try it,
mark all read) and what a replaced inline handler did (confirming a catalog's deletion). Nothing may be
refused by the policy (conftest's watch reports each `securitypolicyviolation`), break a script or
answer 5xx; and the pages must still be styled and scripted, which a policy that refused the site's own
files would break too. Pictures of every page: test-output/e2e/pages/."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from acumos_portal.accounts.models import SiteSettings
from deployment import secretbox
from deployment.choices import DeploymentStatus, TargetDeployers, TargetKind
from deployment.models import Deployment, Target
from marketplace import services
from marketplace.models import Catalog, Favorite, Revision
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from onboarding.services import onboarding_start
from tests.bundles import parts_of
from tests.factories import CatalogFactory, UserFactory, published_revision

from .conftest import SCREENSHOTS, Camera

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "IrisClassifier"  # the example bundle's name
DESCRIPTION = """Classifies iris flowers.

| feature | unit |
|---|--:|
| sepal length | cm |

![our mark](/static/img/favicon.svg) ![a tracker](https://tracker.example/pixel.png?reader=1)
"""
LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><defs><linearGradient id="g">'
        b'<stop offset="0" stop-color="#0b5fff"/><stop offset="1" stop-color="#7c3aed"/></linearGradient></defs>'
        b'<circle cx="12" cy="12" r="11" fill="url(#g)"/></svg>')
HOSTILE_LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9">'
                b'<set attributeName="onmouseover" to="alert(1)"/></rect></svg>')


@pytest.fixture(scope="module")
def camera() -> Camera:
    folder = SCREENSHOTS / "pages"  # beside the walk's pictures, which its own camera clears
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Camera(folder)


@pytest.fixture
def world(portal, settings, inline_jobs, example_bundle, owner, other_user, publisher, admin_user, catalogs):
    """The example onboarded for real (but its smoke test, which is the walk's business), published and
    rated; more models for the filters; a request waiting for review; a running deployment (its runner
    is not there: Try it answers with that error); a superuser for the Django admin."""
    settings.ACUMOS_SMOKE_TEST = False
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts_of(example_bundle))
    job.refresh_from_db()
    revision = Revision.objects.get(pk=job.revision_uuid)
    solution = revision.solution
    services.update_details(owner, solution, description=DESCRIPTION, tags=["iris", "flowers"], model_type="CL")
    services.publish_directly(revision, catalogs["public"])
    services.rate(other_user, solution, 4, "Accurate enough.")
    services.add_comment(other_user, solution, "Which data set?")
    for name, toolkit in (("Boosted Trees", "xgboost"), ("Light Forest", "lightgbm")):
        published_revision(catalogs["public"], name=name, toolkit=toolkit, owner=owner)
    waiting = published_revision(catalogs["company"], name="Waiting Model", owner=owner)
    services.publish(owner, waiting, catalogs["public"], message="Please review.")
    target = Target.objects.create(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)
    deployment = Deployment.objects.create(
        name="iris live", target=target, revision=revision, created_by=owner, status=DeploymentStatus.RUNNING,
        endpoint_url="http://127.0.0.1:9", handle={"pid": 0}, admin_token_encrypted=secretbox.encrypt("t"))
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    half_done(owner)
    return {"job": job, "revision": revision, "solution": solution, "deployment": deployment, "target": target,
            "root": root, "empty_catalog": CatalogFactory(name="Old Models")}


def half_done(owner) -> OnboardingJob:
    """A job four steps into its ten (nothing runs it): My models shows it with a progress bar, and polls."""
    job = OnboardingJob.objects.create(owner=owner, status=JobStatus.RUNNING, model_name="Half Done",
                                       solution_uuid=uuid.uuid4(), version="1.0.0")
    StepResult.objects.bulk_create(
        StepResult(job=job, name=name, position=i, status=StepStatus.SUCCEEDED if i < 4 else StepStatus.PENDING)
        for i, (name, _) in enumerate(STEPS))
    return job


def test_every_page_works_under_the_csp(open_as, browser_problems, camera, world, owner, other_user, publisher,
                                       admin_user):
    anonymous = open_as(None)
    visit(anonymous, camera, "/", "anonymous-browse", heading="Models")
    the_watch_sees_what_the_policy_refuses(anonymous, browser_problems)
    filter_sort_and_search(anonymous, camera)
    model_url = f"/models/{world['solution'].pk}/"
    visit(anonymous, camera, model_url, "anonymous-model", heading=MODEL)
    visit(anonymous, camera, "/accounts/login/", "sign-in", heading="Sign in")
    visit(anonymous, camera, "/accounts/signup/", "sign-up", heading="Create an account")
    visit(anonymous, camera, "/accounts/password/reset/", "password-reset", heading="Reset your password")
    visit(anonymous, camera, "/admin/login/", "admin-sign-in")
    not_found(anonymous, camera, browser_problems)

    visitor = open_as(other_user)
    visit(visitor, camera, model_url, "visitor-model", heading=MODEL)
    the_description_is_styled_and_its_tracker_dropped(visitor)
    favorite(visitor, camera)
    reply(visitor, camera)

    owner_page = open_as(owner)
    visit(owner_page, camera, "/my-models/", "owner-my-models", heading="My models")
    progress = owner_page.get_by_role("progressbar", name="Steps finished")  # a <progress>, not a styled width
    expect(progress).to_have_attribute("value", "4")
    assert progress.evaluate("bar => bar.position") == 0.4
    visit(owner_page, camera, "/my-models/?tab=requests", "owner-my-models-requests", heading="My models")
    visit(owner_page, camera, f"/revisions/{world['revision'].pk}/", "owner-revision", heading=MODEL)
    visit(owner_page, camera, "/onboarding/new/", "owner-onboard", heading="Onboard a model")
    visit(owner_page, camera, f"/onboarding/jobs/{world['job'].pk}/", "owner-job", heading=f"Onboarding {MODEL}")
    expect(owner_page.locator("#job-live")).to_contain_text("10 of 10 steps finished")
    visit(owner_page, camera, "/deployments/", "owner-deployments", heading="Deployments")
    try_it(owner_page, camera, world["deployment"])
    visit(owner_page, camera, "/accounts/password/", "owner-password", heading="Change your password")
    create_a_token(owner_page, camera)
    read_notifications(owner_page, camera)

    reviewer = open_as(publisher)
    visit(reviewer, camera, "/manage/", "publisher-manage", heading="Manage")
    visit(reviewer, camera, "/manage/publish-requests/", "publisher-requests", heading="Publish requests")

    admin = open_as(admin_user)
    for url, name, heading in (("/manage/catalogs/", "admin-catalogs", "Catalogs"),
                               ("/manage/users/", "admin-users", "Users and roles"),
                               (f"/manage/users/{owner.pk}/", "admin-user", owner.username),
                               ("/targets/", "admin-targets", "Deployment targets"),
                               ("/targets/new/", "admin-target-new", "New deployment target")):
        visit(admin, camera, url, name, heading=heading)
    delete_a_catalog_after_confirming(admin, camera, world["empty_catalog"])
    upload_logos(admin, camera, browser_problems)

    django_admin(open_as(world["root"]), camera, world)
    api_docs(open_as(owner), camera)

    assert browser_problems == [], "\n".join(browser_problems)


POLICY = ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "object-src 'none'",
          "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'")


def visit(page: Page, camera: Camera, url: str, name: str, heading: str | None = None) -> None:
    response = page.goto(url)
    policy = response.headers.get("content-security-policy", "")
    assert all(directive in policy for directive in POLICY), f"{url}: {policy!r}"
    if heading is not None:
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
    assert_styled_and_scripted(page)
    camera.shoot(page, name)


def assert_styled_and_scripted(page: Page) -> None:
    """The site's own style sheet and scripts ran: the top bar is laid out as a flex row by portal.css,
    and portal.js marked the page (<html class="js">). A page of Django's admin has neither to check."""
    if page.locator(".topbar").count() == 0:
        return
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar__inner')).display") == "flex"
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))


def the_watch_sees_what_the_policy_refuses(page: Page, problems: list[str]) -> None:
    """The browser enforces the policy and the test hears of it: an inline style, added as an injected
    <style> would be, is refused and reported (then forgiven: it was this test's own)."""
    before = len(problems)
    page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>body { color: red }</style>')")
    expect(page.locator("body")).not_to_have_css("color", "rgb(255, 0, 0)")
    for _ in range(50):  # Chromium's console message and the page's event, each on its way to the test
        if len(problems) >= before + 2:
            break
        page.wait_for_timeout(100)
    heard = sorted(problem.split(":")[0] for problem in problems[before:])
    assert heard == ["CSP violation on http", "console error on http"], problems[before:]
    assert any("style-src-elem refused inline" in problem for problem in problems[before:]), problems[before:]
    del problems[before:]


def not_found(page: Page, camera: Camera, problems: list[str]) -> None:
    """The 404 page, drawn by the site's template; Chromium logs the 404 itself as an error, which is the
    one expected here."""
    url = "/models/00000000-0000-0000-0000-000000000000/"
    before = len(problems)
    visit(page, camera, url, "not-found", heading="Page not found")
    assert problems[before:] == [f"console error on {page.url}: Failed to load resource: the server responded with "
                                 "a status of 404 (Not Found)"]
    del problems[before:]


# ---------------------------------------------------------------- htmx and scripts on the pages

def filter_sort_and_search(page: Page, camera: Camera) -> None:
    """Each answer swaps #results alone (the page is never loaded again: a mark set on it survives) and
    pushes the new address."""
    page.evaluate("window.stillTheSamePage = true")
    results = page.locator("#results")
    expect(results.get_by_role("link", name="Boosted Trees")).to_be_visible()

    results.locator("a.facet__value", has_text="xgboost").click()  # a filter link
    page.wait_for_url(re.compile(r"toolkit=xgboost"))
    expect(results.get_by_role("link", name="Boosted Trees")).to_be_visible()
    expect(results.get_by_role("link", name=MODEL)).to_have_count(0)
    camera.shoot(page, "anonymous-browse-filtered")

    results.locator("a.chip").click()  # its chip takes the filter away again
    expect(results.get_by_role("link", name=MODEL)).to_be_visible()
    # The swap puts a new select in; htmx wires it up only after the swap settles, and a change made
    # before that sends nothing (seen with Chromium 156): wait until htmx has processed it.
    page.wait_for_function("() => !!(document.querySelector('#browse-sort') || {})['htmx-internal-data']")
    page.get_by_label("Sort by").select_option("name")  # the select sends the form itself
    page.wait_for_url(re.compile(r"sort=name"))
    names = results.locator(".model-card__title").all_inner_texts()
    assert [n for n in names if n.strip()] == sorted(n for n in names if n.strip()), names

    page.get_by_role("searchbox", name="Search models").press_sequentially("light", delay=30)  # no Enter
    page.wait_for_url(re.compile(r"q=light"))
    expect(results.get_by_role("link", name="Light Forest")).to_be_visible()
    expect(results.get_by_role("link", name=MODEL)).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    camera.shoot(page, "anonymous-browse-searched")


def the_description_is_styled_and_its_tracker_dropped(page: Page) -> None:
    description = page.locator(".markdown").first
    cell = description.locator("td").nth(1)
    assert cell.evaluate("cell => getComputedStyle(cell).textAlign") == "right"  # align="", not style=""
    ours = description.get_by_role("img", name="our mark")
    expect(ours).to_have_attribute("src", "/static/img/favicon.svg")
    assert ours.evaluate("img => img.complete && img.naturalWidth > 0")
    tracker = description.get_by_role("img", name="a tracker")  # its alt text, shown where the image was
    expect(tracker).to_be_visible()
    assert tracker.evaluate("img => !img.hasAttribute('src') && img.naturalWidth === 0")


def favorite(page: Page, camera: Camera) -> None:
    button = page.locator("#favorite button")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(page.locator("#favorite button")).to_have_attribute("aria-pressed", "true")
    assert Favorite.objects.count() == 1
    camera.shoot(page, "visitor-favorited")


def reply(page: Page, camera: Camera) -> None:
    """The reply box comes in by htmx, and the reply redraws the comments: after a screenshot, which leaves
    style="" on the form fields (Playwright hides the caret), so htmx must not carry style attributes over."""
    comments = page.get_by_role("region", name="Comments")
    comments.get_by_role("link", name="Reply").first.click()
    box = comments.get_by_label("Reply to other")
    expect(box).to_be_visible()
    camera.shoot(page, "visitor-replying")
    box.fill("The iris data set, 150 flowers.")
    comments.get_by_role("button", name="Post reply").click()
    expect(page.get_by_role("region", name="Comments").get_by_text("2 comments", exact=True)).to_be_visible()
    camera.shoot(page, "visitor-replied")


def try_it(page: Page, camera: Camera, deployment: Deployment) -> None:
    visit(page, camera, f"/deployments/{deployment.pk}/", "owner-deployment", heading=deployment.name)
    page.get_by_role("button", name=re.compile("^Send")).click()
    expect(page.locator("#try-result .alert--error")).to_be_visible()  # no runner on port 9: said so, in place
    camera.shoot(page, "owner-deployment-tried")


def create_a_token(page: Page, camera: Camera) -> None:
    """The new token's page, with the copy button portal.js shows."""
    visit(page, camera, "/accounts/profile/", "owner-profile", heading="Your profile")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Token created")
    expect(page.get_by_role("button", name="Copy")).to_be_visible()  # hidden until portal.js sets it up
    camera.shoot(page, "owner-token-created")


def read_notifications(page: Page, camera: Camera) -> None:
    visit(page, camera, "/notifications/", "owner-notifications", heading="Notifications")
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.locator(".feed__item--unread")).to_have_count(0)
    camera.shoot(page, "owner-notifications-read")


def delete_a_catalog_after_confirming(page: Page, camera: Camera, catalog: Catalog) -> None:
    """The question was an inline onsubmit=""; now portal.js asks it (data-confirm)."""
    visit(page, camera, f"/manage/catalogs/{catalog.pk}/", "admin-catalog", heading=f"Edit {catalog.name}")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name=f"Delete {catalog.name}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Edit {catalog.name}")
    assert questions == [f"Delete the catalog {catalog.name}?"] and Catalog.objects.filter(pk=catalog.pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete {catalog.name}").click()
    page.wait_for_url("**/manage/catalogs/")
    assert not Catalog.objects.filter(pk=catalog.pk).exists()


def upload_logos(page: Page, camera: Camera, problems: list[str]) -> None:
    """A hostile SVG is refused (400), naming what it holds; a plain one shows in the top bar (img-src 'self')."""
    visit(page, camera, "/manage/site/", "admin-site", heading="Site settings")
    page.get_by_label("Logo").set_input_files({"name": "logo.svg", "mimeType": "image/svg+xml", "buffer": HOSTILE_LOGO})
    before = len(problems)
    page.get_by_role("button", name=re.compile("^Save")).click()
    expect(page.locator(".field-errors")).to_contain_text('animates attributeName="onmouseover"')
    assert problems[before:] == [f"console error on {page.url}: Failed to load resource: the server responded with "
                                 "a status of 400 (Bad Request)"]  # the form's answer
    del problems[before:]
    assert not SiteSettings.current().logo
    camera.shoot(page, "admin-site-logo-refused")
    page.get_by_label("Logo").set_input_files({"name": "logo.svg", "mimeType": "image/svg+xml", "buffer": LOGO})
    page.get_by_role("button", name=re.compile("^Save")).click()
    logo = page.locator("img.brand__logo")
    expect(logo).to_be_visible()
    # Visible comes before loaded: wait for the image itself (it fails here if img-src refused it).
    page.wait_for_function("() => { const img = document.querySelector('img.brand__logo');"
                           " return img && img.complete && img.naturalWidth > 0; }", timeout=10_000)
    camera.shoot(page, "admin-site-logo")


def django_admin(page: Page, camera: Camera, world: dict) -> None:
    """Django's admin is served under the same policy: its scripts are files (no inline ones since Django 4)."""
    for url, name in (("/admin/", "django-admin"), ("/admin/accounts/user/", "django-admin-users"),
                      (f"/admin/accounts/user/{world['root'].pk}/change/", "django-admin-user"),
                      ("/admin/marketplace/solution/", "django-admin-solutions"),
                      ("/admin/deployment/target/add/", "django-admin-target-add")):
        visit(page, camera, url, name)
        expect(page.locator("#site-name")).to_be_visible()
        assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") != "inline"  # styled
    page.goto("/admin/accounts/user/")
    page.locator("#action-toggle").check()  # actions.js, a script file: every row is selected
    expect(page.locator("input.action-select").first).to_be_checked()


def api_docs(page: Page, camera: Camera) -> None:
    """Swagger UI: its start-up script comes from the view (?script), its styles from files; it loads the
    schema and draws the operations."""
    page.goto("/api/v1/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    page.locator(".swagger-ui .opblock-summary").first.click()
    expect(page.locator(".swagger-ui .opblock-body").first).to_be_visible()
    camera.shoot(page, "api-docs")

