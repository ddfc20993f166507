"""iex/lib/http.py: one classification of outbound failures, and redaction."""

import pytest
import requests
import responses

from iex.lib import http

URL = "https://api.example.com/thing"


@responses.activate
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, http.TransientError),
        (503, http.TransientError),
        (429, http.TransientError),
        (400, http.PermanentError),
        (404, http.PermanentError),
        (422, http.PermanentError),
    ],
)
def test_status_codes_are_classified(status, kind):
    responses.get(URL, status=status, json={"message": "Nope"})
    with pytest.raises(kind) as raised:
        http.request("GET", URL)
    assert raised.value.status == status
    assert raised.value.message == f"api.example.com answered {status}: Nope"


@responses.activate
def test_retry_after_is_kept():
    responses.get(URL, status=429, headers={"Retry-After": "12"}, json={"errors": "Exceeded 40 calls"})
    with pytest.raises(http.TransientError) as raised:
        http.request("GET", URL)
    assert raised.value.retry_after == 12.0


@responses.activate
def test_network_errors_are_transient():
    responses.get(URL, body=requests.ConnectionError("refused"))
    with pytest.raises(http.TransientError, match=r"Could not reach api\.example\.com"):
        http.request("GET", URL)


@responses.activate
def test_success_returns_the_response():
    responses.get(URL, json={"ok": True})
    assert http.request("GET", URL).json() == {"ok": True}


def test_credentials_are_redacted():
    headers = {
        "X-Shopify-Access-Token": "shpat",
        "X-AppSecretToken": "a",
        "Authorization": "Bearer x",
        "Accept": "*/*",
    }
    assert http.redact(headers) == {
        "X-Shopify-Access-Token": "[redacted]",
        "X-AppSecretToken": "[redacted]",
        "Authorization": "[redacted]",
        "Accept": "*/*",
    }


def test_proxies_come_from_the_environment_once_per_host(monkeypatch):
    http._proxies.cache_clear()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert http._proxies("https://api.example.com")["https"] == "http://proxy.internal:3128"
    assert "http" not in http._proxies("http://127.0.0.1:8900")
    http._proxies.cache_clear()
