"""Counts as the merchant reads them, the same on every page, in emails and in messages."""

from django.utils import formats


def count(value: int) -> str:
    """Thousands grouped as the merchant's language writes them ("20,000" in English, "20.000" in Danish). Only for
    text: a number in a URL, a form's value or JSON stays bare (20000), which is why this is not the global
    USE_THOUSAND_SEPARATOR."""
    return formats.number_format(value, force_grouping=True)
