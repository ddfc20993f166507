"""The Log's search finds orders by their customer and by the document made of them. The customer's names are read
off a trigram index on PostgreSQL (SQLite, the embedded default, searches them with a plain LIKE); it is built
CONCURRENTLY, so transfers keep being written while it builds on a table of millions. The customers of transfers
received before are filled by `manage.py fill_search_terms` after deploying (it needs the webshops' transforms, a
floor above this one, and takes minutes at millions of orders). Every index here is built CONCURRENTLY: intake goes on
writing transfers meanwhile."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

from iex.lib.migrations import AddIndexConcurrently

TRIGRAMS = "transfer_search_terms"


def add_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TRIGRAMS} ON transferlog_transfer "
            "USING gin (search_terms gin_trgm_ops)"
        )


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {TRIGRAMS}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [
        ("transferlog", "0014_transfer_handled"),
    ]

    operations = [
        migrations.AddField(
            model_name="transfer",
            name="search_terms",
            field=models.TextField(blank=True, db_default=""),
        ),
        migrations.AddField(
            model_name="transfer",
            name="search_email",
            field=models.CharField(blank=True, db_default="", max_length=254),
        ),
        AddIndexConcurrently(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("target_ref", ""), _negated=True),
                fields=["integration", "target_ref"],
                name="transfer_target_id",
            ),
        ),
        AddIndexConcurrently(
            model_name="transfer",
            index=models.Index(
                fields=["integration", "search_email"],
                name="transfer_search_email",
                opclasses=["int8_ops", "varchar_pattern_ops"],
            ),
        ),
        TrigramExtension(),
        migrations.RunPython(add_trigram_index, drop_trigram_index),
    ]
