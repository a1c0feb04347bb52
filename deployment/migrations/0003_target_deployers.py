"""Who may deploy to a target. New targets take deployments from operators and admins only.

Targets that exist already keep what they did before this field: every enabled target took
deployments from the owners of the models, so they are set to "owners". An upgrade then takes
nothing away that people use (the README's walk deploys a data scientist's model to the "This
host" that `make run` made); an admin narrows each target on the Targets page."""

from django.db import migrations, models


def keep_owners_deploying(apps, schema_editor):
    apps.get_model("deployment", "Target").objects.update(deployers="owners")


class Migration(migrations.Migration):

    dependencies = [
        ('deployment', '0002_health_grace_trigger'),
    ]

    operations = [
        migrations.AddField(
            model_name='target',
            name='deployers',
            field=models.CharField(choices=[('operators', 'Operators and admins only'), ('owners', 'Model owners too')], default='operators', help_text='who may deploy here: operators and admins only, or also model owners (their own models)', max_length=10),
        ),
        migrations.RunPython(keep_owners_deploying, migrations.RunPython.noop),
    ]
