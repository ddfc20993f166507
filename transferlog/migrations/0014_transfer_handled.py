from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("transferlog", "0013_transfer_waits"),
    ]

    operations = [
        migrations.AddField(
            model_name="transfer",
            name="handled_by",
            field=models.CharField(blank=True, db_default="", max_length=254),
        ),
        migrations.AddField(
            model_name="transfer",
            name="handled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
