from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from acumos_portal.accounts.models import User, forget_all_roles, roles_key
from acumos_portal.accounts.services import grant_default_role, session_forget, session_remember
from acumos_portal.caching import forget_now_and_on_commit

# Sent by `manage.py bootstrap` once the roles and the admin exist: each app sets up what a new site
# needs of it (deployment: the "This host" target), so the floor never imports the apps above it.
# A receiver returns a line to print, or "".
bootstrapped = Signal()


@receiver(post_save, sender=User)
def give_default_role(sender, instance: User, created: bool, **kwargs):
    if created:
        grant_default_role(instance)


@receiver(m2m_changed, sender=User.groups.through)
def forget_changed_roles(sender, instance, action, reverse, pk_set, **kwargs):
    """Whoever changes them (services, the admin)."""
    if not action.startswith("post_"):
        return
    user_ids = (pk_set or set()) if reverse else {instance.pk}
    if reverse and action == "post_clear":  # group.user_set.clear(): the users are not named
        forget_now_and_on_commit(forget_all_roles)
        return
    keys = [roles_key(user_id) for user_id in user_ids]
    forget_now_and_on_commit(lambda: cache.delete_many(keys))


@receiver(post_save, sender=Group)
@receiver(post_delete, sender=Group)
def forget_roles_of_everyone(sender, **kwargs):
    forget_now_and_on_commit(forget_all_roles)


@receiver(user_logged_in)
def remember_session(sender, request, user, **kwargs):
    """So that signing out everywhere, or a new password, finds the user's sessions."""
    session = getattr(request, "session", None)
    session_remember(user, session.session_key if session is not None else None)


@receiver(user_logged_out)
def forget_session(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    session_forget(session.session_key if session is not None else None)
