from django.db.models.signals import post_save
from django.dispatch import receiver

from acumos_portal.accounts.models import User


@receiver(post_save, sender=User)
def give_default_role(sender, instance: User, created: bool, **kwargs):
    if created:
        from acumos_portal.accounts.services import grant_default_role

        grant_default_role(instance)
