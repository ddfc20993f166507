"""Refunded orders are sales (an invoice, and the refund's credit note): shops that transfer paid orders transfer the
partially refunded and refunded ones too, which they skipped before."""

from django.db import migrations

SALES = ["partially_refunded", "refunded"]


def refunded_orders_are_sales(apps, schema_editor):
    Module = apps.get_model("connections", "Module")
    for module in Module.objects.filter(kind="shopify").only("pk", "settings"):
        states = (module.settings or {}).get("financial_states")
        if isinstance(states, list) and "paid" in states and not set(SALES) <= set(states):
            module.settings["financial_states"] = [*states, *(s for s in SALES if s not in states)]
            module.save(update_fields=["settings"])


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0005_inbox_drains"),
    ]

    operations = [
        migrations.RunPython(refunded_orders_are_sales, migrations.RunPython.noop, elidable=True),
    ]
