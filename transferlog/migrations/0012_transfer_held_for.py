from django.db import migrations, models


def held_for_orders(apps, schema_editor):
    """Every transfer held so far waited for orders (the allowance): the only reason there was."""
    apps.get_model("transferlog", "Transfer").objects.filter(status="held").update(held_for="orders")


class Migration(migrations.Migration):
    dependencies = [
        ("transferlog", "0011_transfer_problems_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="transfer",
            name="held_for",
            field=models.CharField(blank=True, db_default="", max_length=120),
        ),
        migrations.RunPython(held_for_orders, migrations.RunPython.noop, elidable=True),
    ]
