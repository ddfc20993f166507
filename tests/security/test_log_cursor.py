"""The Log's pager names a transfer by its time and code: the URL shows no row id (which would tell the platform's
volume), and a code of another integration pages nothing of it."""

import re
from urllib.parse import unquote

import pytest
from django.urls import reverse

from tests.test_log import make

pytestmark = pytest.mark.django_db


def test_the_pager_shows_no_row_id(personas, connected):
    made = [make(connected, n, minutes_ago=200 - n) for n in range(60)]
    body = (
        personas.client(personas.viewer).get(reverse("log", args=[personas.integration.number])).content.decode()
    )
    (older,) = [unquote(found) for found in re.findall(r"before=([^\"&]+)", body)]
    assert older.endswith(str(made[10].code)) and f"_{made[10].pk}" not in older
    page = personas.client(personas.viewer).get(
        reverse("log", args=[personas.integration.number]), {"before": older}
    )
    assert "#9" in page.content.decode() and "#10<" not in page.content.decode()


def test_a_cursor_of_another_integration_pages_nothing_of_it(personas, connected):
    make(connected, 1)
    elsewhere = personas.client(personas.outsider).get(
        reverse("log", args=[personas.other.number]),
        {"before": f"2100-01-01T00:00:00+00:00_{connected.integration.transfers.get().code}"},
    )
    assert elsewhere.status_code == 200 and "#1<" not in elsewhere.content.decode()
