from django import template

from dashboard.help import FOR_URL_NAME

register = template.Library()


@register.simple_tag(takes_context=True)
def help_page(context: template.Context) -> str:
    """The name of the help page of the page being shown ("" where there is none), from its URL's name: one place,
    base.html, links every page to its help."""
    match = getattr(context.get("request"), "resolver_match", None)
    return FOR_URL_NAME.get(match.url_name or "", "") if match else ""
