"""One unread notification per event (user, kind, target, title): what lets two workers that tell the
same thing at once add to one row (services.notify). Its own migration, after 0009 grouped the rows
already there: a table that was written to is not altered in the same transaction."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0009_notification_grouping_fields'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.UniqueConstraint(condition=models.Q(('read_at__isnull', True)), fields=('user', 'kind', 'target', 'title'), name='one_unread_notification_per_event'),
        ),
    ]
