from django.db import models


class Role(models.TextChoices):
    """Roles are Django groups with these names; a user may hold several."""

    DATA_SCIENTIST = "Data Scientist"
    PUBLISHER = "Publisher"
    ADMIN = "Admin"
    OPERATOR = "Operator"
    LICENCE_ADMIN = "Licence Admin"


DEFAULT_ROLE = Role.DATA_SCIENTIST
