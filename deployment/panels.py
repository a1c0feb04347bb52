"""View context for the pages that show deploying a revision: the revision page's deploy panel and
the deployment pages. A panel builds a form, so it lives here rather than in selectors (forms read
the selectors: a selector building a form would make an import circle)."""

from __future__ import annotations

from deployment.forms import DeployForm
from deployment.models import Target
from deployment.selectors import (
    already_deployed,
    can_deploy,
    deployment_quota_reached,
    deployments_of_revision,
    runs_any_deployment,
    targets_for,
)
from marketplace.models import Revision


def deploy_panel(revision: Revision, user) -> dict:
    """What the revision page shows about deploying it: the form offers only the targets the user may
    use, says so when the user's live deployments are at the quota, and warns (and asks before it
    sends) when this revision is already deployed there."""
    allowed = can_deploy(user, revision)
    offered = allowed and revision.is_ready
    quota_message = deployment_quota_reached(user)[0] if offered else ""
    already = already_deployed(user, revision) if offered else {"running": [], "kept": []}
    return {"deployments": list(deployments_of_revision(user, revision)), "can_deploy": allowed,
            "deploy_form": DeployForm(targets=targets_for(user) if allowed else Target.objects.none()),
            "runs_any_deployment": runs_any_deployment(user), "deploy_quota_message": quota_message,
            "already_deployed": already, "deploy_confirm": _confirm_another(already)}


def _confirm_another(already: dict) -> str:
    """The question the Deploy button asks when a copy exists: a second is legitimate (a replica), but
    usually a double click or a forgotten tab."""
    copies = [*already["running"], *already["kept"]]
    if not copies:
        return ""
    names = "; ".join(f"{deployment.display_name} on {deployment.target.name} ({deployment.get_status_display()})"
                      for deployment in copies)
    return f"This version is already deployed here: {names}. Deploy another copy?"
