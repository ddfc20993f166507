"""The plans and module prices we sell (DKK, in øre, excluding VAT); staff edit them in the admin."""

from django.db import migrations

PLANS = [
    # code, name, orders a month, monthly price, retention days, members, pack price (100 orders)
    ("basic", "Basic", 200, 19900, 30, 2, 9900),
    ("standard", "Standard", 1000, 49900, 90, 5, 7900),
    ("premium", "Premium", 5000, 149900, 180, 15, 5900),
    ("enterprise", "Enterprise", 20000, 399900, 365, 50, 4900),
]
SYSTEM_PRICES = [("shopify", 9900), ("woocommerce", 9900), ("economic", 9900), ("dinero", 9900)]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    SystemPrice = apps.get_model("billing", "SystemPrice")
    for position, (code, name, orders, price, days, members, pack) in enumerate(PLANS):
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "included_orders": orders,
                "monthly_price": price,
                "retention_days": days,
                "member_limit": members,
                "pack_orders": 100,
                "pack_price": pack,
                "position": position,
            },
        )
    for kind, price in SYSTEM_PRICES:
        SystemPrice.objects.update_or_create(kind=kind, defaults={"monthly_price": price})


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
