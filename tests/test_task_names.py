"""The Celery task names stay as they are. A message waiting in the broker names its task: a worker
that no longer has a task of that name drops the message, and the job it was to run (an upload's
next step, an image build, a deployment operation) is lost. Renaming a task is then a migration
(register the old name too until the queues have drained), not a refactoring; this test makes it a
decision instead of an accident. The names are listed literally, not built from STEPS or the
modules' constants, so that renaming one of those fails here too."""

from __future__ import annotations

import importlib

import pytest

from acumos_portal.celery import app

TASK_NAMES = {
    "acumos_portal.reap_jobs",
    "batch.run_job",
    "acumos_portal.resume_jobs",
    "deployment.check_deployments",
    "deployment.decommission_due",
    "deployment.run_operation",
    "deployment.sweep_sandboxes",
    "federation.run_due",
    "federation.run_subscription",
    "images.build",
    "monitoring.collect",
    "monitoring.deliver_hook",
    "monitoring.prune",
    "onboarding.build_image",
    "onboarding.create_revision",
    "onboarding.generate_descriptors",
    "onboarding.mark_ready",
    "onboarding.smoke_test",
    "onboarding.store_artifacts",
    "onboarding.validate_licence",
    "onboarding.validate_metadata",
    "onboarding.validate_package",
    "onboarding.validate_proto",
}
# Where a worker finds each app's tasks: autodiscovery imports `<app>.tasks` of every installed app.
TASK_MODULES = {"onboarding": "onboarding.tasks", "images": "images.tasks", "deployment": "deployment.tasks",
                "federation": "federation.tasks", "monitoring": "monitoring.tasks"}


@pytest.fixture(scope="module")
def registered() -> dict:
    app.loader.import_default_modules()  # what a worker does when it starts: autodiscovers the tasks
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_the_task_names_are_the_ones_queued_messages_may_name(registered):
    assert set(registered) == TASK_NAMES


@pytest.mark.parametrize("name", sorted(name for name in TASK_NAMES if name.split(".")[0] in TASK_MODULES))
def test_each_task_is_importable_at_its_module_path(name, registered):
    module = importlib.import_module(TASK_MODULES[name.split(".")[0]])
    # The onboarding steps are made in a loop (one task per step): the module keeps them in STEP_TASKS.
    found = [*vars(module).values(), *getattr(module, "STEP_TASKS", {}).values()]
    assert name in {getattr(task, "name", None) for task in found}
    assert registered[name].__module__ == module.__name__
