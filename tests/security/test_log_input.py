"""What a merchant (or a link someone sends them) puts in the Log's URLs and forms, and what shops put in order
names, cannot break a page, send them elsewhere or run in their spreadsheet."""

import csv
import io

import pytest
from django.urls import reverse

from tests.test_log import make
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("dates", [{"from": "2024-02-30"}, {"to": "2023-13-01"}, {"from": "yesterday"}])
def test_a_day_that_does_not_exist_is_said_not_a_500(personas, connected, dates):
    make(connected, 1001, status="failed")
    number = personas.integration.number
    client = personas.client(personas.owner)
    page = client.get(reverse("log", args=[number]), dates)
    assert page.status_code == 200
    body = page.content.decode()
    assert f"“{next(iter(dates.values()))}” is not a day" in body and "#1001" in body
    exported = client.get(reverse("export_log", args=[number]), dates)
    assert exported.status_code == 400 and b"nothing was exported" in exported.content
    retried = client.post(reverse("retry_failed_transfers", args=[number]), dates, follow=True)
    assert "nothing was retried" in retried.content.decode()
    assert Transfer.objects.get().status == "failed"


@pytest.mark.parametrize(
    "back",
    ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "\\\\evil.example", "/\\evil.example"],
)
def test_retry_goes_back_only_to_a_page_of_iex(personas, connected, back):
    transfer = make(connected, 1001, status="failed")
    number = personas.integration.number
    answer = personas.client(personas.viewer).post(
        reverse("retry_transfer", args=[number, transfer.code]), {"back": back}
    )
    assert answer.status_code == 302 and answer["Location"] == reverse("log", args=[number])


def test_retry_goes_back_to_the_filtered_log_it_came_from(personas, connected):
    transfer = make(connected, 1001, status="failed")
    back = reverse("log", args=[personas.integration.number]) + "?status=failed"
    answer = personas.client(personas.viewer).post(
        reverse("retry_transfer", args=[personas.integration.number, transfer.code]), {"back": back}
    )
    assert answer["Location"] == back
    # htmx's HX-Current-URL is the whole address of the page: of this site, it goes back there too.
    answer = personas.client(personas.viewer).post(
        reverse("retry_transfer", args=[personas.integration.number, transfer.code]),
        {"back": f"http://testserver{back}"},
    )
    assert answer["Location"] == back


def test_the_export_never_hands_a_spreadsheet_a_formula(personas, connected):
    for n, (reference, reason) in enumerate([
        ('=HYPERLINK("https://evil.example","Click")', "+1+1"),
        ("@SUM(1+1)", "-2+3"),
        ("\tTab", "\rReturn"),
        ("=cmd|' /C calc'!A0", "A plain reason"),
    ]):  # fmt: skip
        Transfer.objects.filter(pk=make(connected, 2000 + n, reason=reason).pk).update(reference=reference)
    exported = personas.client(personas.viewer).get(reverse("export_log", args=[personas.integration.number]))
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    cells = [row[name] for row in rows for name in ("reference", "reason")]
    assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for cell in cells), cells
    assert '\'=HYPERLINK("https://evil.example","Click")' in cells and "A plain reason" in cells
