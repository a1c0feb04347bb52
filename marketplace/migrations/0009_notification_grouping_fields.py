"""Notifications group repeats: a count, and the object each one is about (target). The rows already
there get their target from their url, and the unread repeats of one event become one row with their
number, as services.notify keeps them from now on (0010 then makes it a rule)."""

from django.db import migrations, models

BATCH = 1000


def _target_of(url: str) -> str:
    # As services.target_of at the time of writing: the page, without its anchor or query.
    return url.split("#", 1)[0].split("?", 1)[0][:200]


def fill_targets(apps, schema_editor):
    Notification = apps.get_model("marketplace", "Notification")
    changed = []
    for note in Notification.objects.exclude(url="").only("pk", "url").iterator(chunk_size=BATCH):
        note.target = _target_of(note.url)
        changed.append(note)
        if len(changed) == BATCH:
            Notification.objects.bulk_update(changed, ["target"])
            changed = []
    Notification.objects.bulk_update(changed, ["target"])


def group_unread_repeats(apps, schema_editor):
    """Of each unread event's rows the newest stays, counting them all; the others go."""
    Notification = apps.get_model("marketplace", "Notification")
    unread = (Notification.objects.filter(read_at__isnull=True)
              .order_by("user_id", "kind", "target", "title", "-created", "-id")
              .values_list("pk", "user_id", "kind", "target", "title"))
    kept_pk, kept_key, count, repeats = None, None, 0, []
    for pk, *key in unread.iterator(chunk_size=BATCH):
        if key != kept_key:
            _keep(Notification, kept_pk, count)
            kept_pk, kept_key, count = pk, key, 0
        else:
            repeats.append(pk)
        count += 1
    _keep(Notification, kept_pk, count)
    for start in range(0, len(repeats), BATCH):
        Notification.objects.filter(pk__in=repeats[start:start + BATCH]).delete()


def _keep(Notification, pk, count: int) -> None:
    if pk is not None and count > 1:
        Notification.objects.filter(pk=pk).update(count=count)


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0008_solution_counts_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='notification',
            name='count',
            field=models.PositiveIntegerField(db_default=1, default=1, help_text='how many times it happened while unread'),
        ),
        migrations.AddField(
            model_name='notification',
            name='target',
            field=models.CharField(blank=True, help_text='what it is about (the object\'s page, without the anchor): repeats group by it', max_length=200),
        ),
        migrations.AlterField(
            model_name='notification',
            name='created',
            field=models.DateTimeField(auto_now_add=True, help_text='when it last happened'),
        ),
        migrations.AlterField(
            model_name='notification',
            name='message',
            field=models.TextField(blank=True, help_text="the latest event's", max_length=2048),
        ),
        migrations.AlterField(
            model_name='notification',
            name='url',
            field=models.CharField(blank=True, help_text="the latest event's", max_length=500),
        ),
        migrations.RunPython(fill_targets, migrations.RunPython.noop),
        migrations.RunPython(group_unread_repeats, migrations.RunPython.noop),
    ]
