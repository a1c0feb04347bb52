"""PostgreSQL only: the GIN index full-text search reads, and search vectors for existing rows.
Every database: the two seeded catalogs and the search text of existing solutions."""

from django.contrib.postgres.search import SearchVector
from django.db import migrations

GIN = "CREATE INDEX IF NOT EXISTS solution_search_gin ON marketplace_solution USING gin (search_vector)"
DROP_GIN = "DROP INDEX IF EXISTS solution_search_gin"
SEEDS = (
    ("Public Models", "PB", False, "Models anyone may find and use, published after a publisher's review."),
    ("Company Models", "RS", True, "Models for everyone signed in to this site; owners publish them directly."),
)


def forwards(apps, schema_editor):
    Catalog = apps.get_model("marketplace", "Catalog")
    Solution = apps.get_model("marketplace", "Solution")
    for name, access, self_publish, description in SEEDS:
        Catalog.objects.get_or_create(name=name, defaults={
            "access": access, "self_publish": self_publish, "description": description})
    for solution in Solution.objects.select_related("owner"):
        text = "\n".join([solution.name, solution.description, solution.owner.username, solution.toolkit])
        Solution.objects.filter(pk=solution.pk).update(search_text=text.lower())
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GIN)
        Solution.objects.update(search_vector=SearchVector("name", weight="A", config="english")
                                + SearchVector("search_text", weight="C", config="english"))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_GIN)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0003_catalogs_publishing_social")]
    operations = [migrations.RunPython(forwards, backwards)]
