"""View context for the pages that show deploying a revision: the revision page's deploy panel and
the deployment pages. A panel builds a form, so it lives here rather than in selectors (forms read
the selectors: a selector building a form would make an import circle)."""

from __future__ import annotations

from deployment.forms import DeployForm
from deployment.models import Target
from deployment.selectors import (
    can_deploy,
    deployment_quota_reached,
    deployments_of_revision,
    runs_any_deployment,
    targets_for,
)
from marketplace.models import Revision


def deploy_panel(revision: Revision, user) -> dict:
    """What the revision page shows about deploying it: the form offers only the targets the user may
    use, and says so when the user's live deployments are at the quota."""
    allowed = can_deploy(user, revision)
    quota_message = deployment_quota_reached(user)[0] if allowed and revision.is_ready else ""
    return {"deployments": list(deployments_of_revision(user, revision)), "can_deploy": allowed,
            "deploy_form": DeployForm(targets=targets_for(user) if allowed else Target.objects.none()),
            "runs_any_deployment": runs_any_deployment(user), "deploy_quota_message": quota_message}
