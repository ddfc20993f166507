from django import template

from iex.lib.numbers import count

register = template.Library()

# {{ n|number }}: a count as the merchant reads it (iex.lib.numbers.count).
register.filter("number", count)
