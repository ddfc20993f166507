from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from iex.urls import urlpatterns as iex_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> HttpResponse:
    """The floor: Django's request cycle and nothing else."""
    request.body  # noqa: B018 - read the body like the intake does
    return HttpResponse("OK\n", content_type="text/plain")


urlpatterns = [path("bench/bare/", bare), *iex_urlpatterns]
