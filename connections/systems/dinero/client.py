"""Dinero's API (v1, and v1.2 for updates), through the merchant's Dinero login or their organisation's API key.

IEX is registered with Visma Connect as an app (DINERO_CLIENT_ID / DINERO_CLIENT_SECRET). A merchant lets IEX in
either through Dinero's login (oauth.py: the authorization-code flow gives a refresh token, kept with the module's
credentials) or with their organisation's own API key (the password grant, the key as user name and password).
Access tokens live about an hour: each is kept in the shared cache until a minute before it runs out, and asked for
again on a 401. A refresh token works once: one worker at a time refreshes (the module's row is locked) and the new
one is kept before the lock is let go. When Visma Connect refuses it (the merchant withdrew IEX's access), the module
is noted as refused: Home and the error digest tell the members to connect Dinero again.

A document is found again by its ExternalReference (the shop's order reference) when IEX's own record of it was lost.
A draft is updated with the Timestamp Dinero gave it last: when somebody changed it in between, Dinero answers error
58, and the draft is read again and the update tried again. A booked invoice is never changed: a cancelled order is
credited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import suppress
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F

from connections.common import (
    CreditNote,
    Customer,
    Document,
    DocumentLine,
    Order,
    Outcome,
    Product,
    StockLevel,
    money,
    note_document,
    two_decimal_net,
)
from connections.systems import Claim, Record
from connections.systems.dinero import transforms
from connections.systems.dinero.transforms import Chart, Plan
from iex.lib import http, secrets

if TYPE_CHECKING:
    from connections.models import Mapping, Module

API_URL = "https://api.dinero.dk"
CONNECT_URL = "https://connect.visma.com"
CHART_SECONDS = 3600
STALE = 58  # Dinero's error code for an update or booking with a Timestamp that is not the entity's current one
NOT_DRAFT = 52
NO_PRO = 48
UPDATE_TRIES = 3
SCOPES = "dineropublicapi:read dineropublicapi:write"
INVOICES, CREDIT_NOTES = "invoices", "sales/creditnotes"
SETTINGS_LINK = "Systems > Dinero > Settings, accounts"
WITHDRAWN = (
    "Dinero no longer lets IEX in: the access given through Dinero's login was withdrawn or has run out. "
    "Connect Dinero again"
)


# Dinero's web app, where the merchant opens what IEX made: a sale by its Guid in the organisation's app. (The sandbox
# serves no such pages, so the real address is given in development too.)
WEB_APP = "https://app.dinero.dk"


def document_url(organization: str, guid: str) -> str:
    """Where the merchant opens the invoice or credit note `guid` in Dinero's web app."""
    return f"{WEB_APP}/{organization}/sales/{guid}"


def document_title(kind: str, number: object = None) -> str:
    """What the merchant calls a document of `kind`: Dinero numbers a document when it is booked."""
    name = "Credit note" if kind == CREDIT_NOTES else "Invoice"
    return f"{name} {number}" if number else f"{name} draft"


def read_document(document: dict[str, Any], kind: str, organization: str, chart: Chart) -> Document:
    """Dinero's invoice or credit note (as read after saving it: the answer to a save has only its Guid) in the Log's
    words; each line's VAT rate is the one its sales account books."""
    lines = []
    for line in document.get("ProductLines") or []:
        if line.get("LineType") == "Text":
            continue
        quantity, unit = Decimal(str(line.get("Quantity", 0))), money(line.get("BaseAmountValue"))
        discount = Decimal(str(line.get("Discount") or 0))
        net = money(line["TotalAmount"]) if "TotalAmount" in line else two_decimal_net(quantity, unit, discount)
        vat = money(line["TotalAmountInclVat"]) - net if "TotalAmountInclVat" in line else None
        rate = chart.rate(int(line["AccountNumber"])) if line.get("AccountNumber") else None
        lines.append(DocumentLine(str(line.get("Description", "")), quantity, unit, discount, net, rate, vat))
    return Document(
        system="Dinero",
        title=document_title(kind, document.get("Number")),
        url=document_url(organization, str(document.get("Guid", ""))),
        currency=str(document.get("Currency", "")),
        customer=str(document.get("ContactName") or ""),
        lines=lines,
        net=money(document.get("TotalExclVat")),
        vat=money(document.get("TotalVat")),
        total=money(document.get("TotalInclVat")),
    )


def api_url(module: Module) -> str:
    return (module.base_url or "").rstrip("/") or API_URL


def connect_url(module: Module) -> str:
    """Visma Connect, where IEX's tokens come from (the sandbox's, when the module points at it)."""
    base = (module.base_url or "").rstrip("/")
    return f"{base}/connect" if base else f"{CONNECT_URL}/connect"


def grant(module: Module, form: dict[str, str], refused: str) -> dict[str, Any]:
    """Visma Connect's answer to a grant (`form`), asked with IEX's app credentials; `refused` is the merchant's
    message when it refuses the grant itself."""
    client = (django_settings.DINERO_CLIENT_ID, django_settings.DINERO_CLIENT_SECRET)
    if not client[0]:
        raise http.PermanentError("IEX is not registered with Dinero on this installation (DINERO_CLIENT_ID)")
    try:
        answer = http.request("POST", f"{connect_url(module)}/token", data=form, auth=client, gate=module.gate)
    except http.PermanentError as exc:
        error = exc.body.get("error") if isinstance(exc.body, dict) else ""
        if error == "invalid_grant":  # the merchant's key or login: as a 401, so the module is noted as refused
            raise http.PermanentError(refused, status=401, body=exc.body) from None
        if error == "invalid_client":
            # IEX's own registration, not the merchant's: no status, so no module is marked as refused
            raise http.PermanentError(
                "Dinero refused IEX's app registration (DINERO_CLIENT_ID, DINERO_CLIENT_SECRET): tell support",
                body=exc.body,
            ) from None
        raise
    try:
        return dict(answer.json())
    except (ValueError, TypeError):
        raise http.TransientError("Visma Connect's answer could not be read: trying again later") from None


class DineroClient:
    def __init__(self, module: Module) -> None:
        credentials = module.get_credentials()
        self.module = module
        self.gate = module.gate  # the account's rate budget and circuit, shared by every worker
        self.settings = module.settings_values()
        self.api = api_url(module)
        # The organisation's own key, else the refresh token Dinero's login gave (kept with the credentials)
        self.api_key = str(credentials.get("api_key") or "")
        if not self.api_key and not credentials.get("refresh_token"):
            raise KeyError("api_key")  # connected neither way: the credentials are incomplete
        self.organization = str(credentials.get("organization_id") or "")
        # The access token is kept per credentials: connecting again (a new login, a new key) starts afresh.
        connected = module.connected_at.isoformat() if module.connected_at else ""
        account = f"{module.pk}:{connect_url(module)}:{self.api_key or 'login'}:{connected}"
        self._key = "dinero:" + hashlib.sha256(account.encode()).hexdigest()

    # --- the API -------------------------------------------------------------------------------------------

    def _token(self, fresh: bool = False) -> str:
        if not fresh and (kept := self._kept_token()):
            return kept
        if not self.api_key:
            return self._refreshed(fresh)
        form = {"grant_type": "password", "username": self.api_key, "password": self.api_key, "scope": SCOPES}
        refused = "Dinero refused the API key: copy it again from Dinero > Settings > Integrations"
        return self._keep_token(grant(self.module, form, refused))

    def _kept_token(self) -> str | None:
        if kept := cache.get(f"{self._key}:token"):
            with suppress(secrets.DecryptionError):  # kept under a key since retired: ask for a new one
                return secrets.decrypt(str(kept))  # an hour's write access: kept encrypted, as credentials are
        return None

    def _keep_token(self, answer: dict[str, Any]) -> str:
        token = str(answer["access_token"])
        lifetime = max(60, int(answer.get("expires_in") or 3600) - 60)  # renewed a minute before it runs out
        cache.set(f"{self._key}:token", secrets.encrypt(token), lifetime)
        return token

    def _refreshed(self, fresh: bool) -> str:
        """A new access token for the refresh token Dinero's login gave. One worker at a time: a refresh token works
        once, so the one Visma Connect gives back is kept (in the same transaction) before another may refresh."""
        modules = type(self.module).objects.filter(pk=self.module.pk)
        with transaction.atomic():
            # The row's write lock (on SQLite too, where SELECT ... FOR UPDATE is not), held until the new refresh
            # token is committed.
            modules.update(credentials=F("credentials"))
            if not fresh and (kept := self._kept_token()):
                return kept  # refreshed by another worker while this one waited
            credentials = modules.get().get_credentials()
            if not credentials.get("refresh_token"):
                raise http.PermanentError(WITHDRAWN, status=401)
            form = {"grant_type": "refresh_token", "refresh_token": str(credentials["refresh_token"])}
            answer = grant(self.module, form, WITHDRAWN)
            if rotated := answer.get("refresh_token"):
                self.module.keep_credentials({**credentials, "refresh_token": str(rotated)})
        return self._keep_token(answer)  # once the new refresh token is committed: the cache cannot undo it

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """The answer's JSON (None when it has no body). A 401 gets a new token once."""
        url = f"{self.api}/{path}"
        for fresh in (False, True):
            headers = {"Authorization": f"Bearer {self._token(fresh)}", "Accept": "application/json"}
            try:
                response = http.request(method, url, headers=headers, params=params, json=json, gate=self.gate)
            except http.PermanentError as exc:
                if exc.status == 401 and not fresh:
                    continue
                raise _explained(exc) from None
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    def _org(self) -> str:
        """The organisation: the one the module names, else the only one the key opens."""
        if self.organization:
            return self.organization
        if found := cache.get(f"{self._key}:organization"):
            return str(found)
        organizations = self.organizations()
        if len(organizations) != 1:
            names = ", ".join(f"{o['Id']} ({o.get('Name', '')})" for o in organizations) or "none"
            raise http.PermanentError(
                f"The API key opens several organisations: enter the organisation ID ({names})"
            )
        found = str(organizations[0]["Id"])
        cache.set(f"{self._key}:organization", found, CHART_SECONDS)
        return found

    def organizations(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "v1/organizations", params={"fields": "Name,Id,IsPro"}) or [])

    def _v1(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, f"v1/{self._org()}/{path}", **kwargs)

    def _list(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a list, a page at a time, as far as its Pagination says."""
        page = 0
        while True:
            body = self._v1("GET", path, params={**params, "page": page, "pageSize": 1000})
            yield from body["Collection"]
            paging = body.get("Pagination") or {}
            if (page + 1) * int(paging.get("PageSize") or 1000) >= int(paging.get("Result") or 0):
                return
            page += 1

    def test(self) -> str:
        organizations = self.organizations()
        if self.organization and not any(str(o["Id"]) == self.organization for o in organizations):
            opens = ", ".join(f"{o['Id']} ({o.get('Name', '')})" for o in organizations) or "none"
            raise http.PermanentError(
                f"The API key does not open organisation {self.organization}: it opens {opens}"
            )
        org = self._org()
        cache.delete(self._chart_key())  # the accounts are read again
        self.chart()  # proves the organisation answers (Dinero Pro)
        name = next((o.get("Name", "") for o in organizations if str(o["Id"]) == org), "")
        return f"Connected to organisation {org} ({name})"

    def account(self) -> str:
        return self._org()

    def chart(self) -> Chart:
        """The organisation's accounts and the rate each books, kept an hour (saving the settings reads it again)."""
        key = self._chart_key()
        if data := cache.get(key):
            return Chart.from_data(data)
        accounts = {
            int(a["AccountNumber"]): (str(a.get("Name", "")), str(a.get("VatCode") or "none"))
            for a in self._v1("GET", "accounts/entry")
        }
        try:
            rates = {str(v["VatCode"]): Decimal(str(v.get("VatRate") or 0)) for v in self._v1("GET", "vatTypes")}
        except http.PermanentError as exc:
            if exc.status != 404:
                raise
            rates = dict(transforms.KNOWN_RATES)
        chart = Chart(accounts, rates)
        cache.set(key, chart.to_data(), CHART_SECONDS)
        return chart

    def _chart_key(self) -> str:
        saved = hashlib.sha256(str(sorted(self.settings.items())).encode()).hexdigest()
        return f"{self._key}:chart:{saved}"  # saved settings are part of it: saving them reads the chart again

    # --- orders --------------------------------------------------------------------------------------------

    def send_order(self, order: Order, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
        """Create or update the order's invoice; idempotent through `mapping` and the ExternalReference. A booked
        invoice is never changed; a cancelled order's draft is deleted, its booked invoice credited."""
        known = mapping.target_ref
        if not known and (found := self._locate(INVOICES, transforms.key(order.source_ref))):
            mapping.target_ref, mapping.target_state = found  # made by an attempt that died after Dinero saved it
        if order.cancelled:
            return self._cancel(order, mapping, record, claim)
        if mapping.target_state == "booked":
            if not known:
                return Outcome("created", "", "created", mapping.target_ref)
            return Outcome("skipped", _booked(mapping))
        if mapping.target_state in ("deleted", "credited"):
            mapping.target_ref = mapping.target_state = ""  # a sale again: on an invoice of its own
            return self._save_order(order, mapping, "created", record, claim)
        if known and not self.settings["update_drafts"]:
            return Outcome("skipped", f"Draft {known} exists and updating drafts is off")
        return self._save_order(order, mapping, "updated" if known else "created", record, claim)

    def _save_order(self, order: Order, mapping: Mapping, action: str, record: Record, claim: Claim) -> Outcome:
        prepared = self._prepare(order, record, claim)
        if isinstance(prepared, Outcome):
            return prepared
        planned, contact = prepared
        payload = transforms.order_document(order, contact, planned, self.settings)
        try:
            guid, stamp = self._save(INVOICES, mapping.target_ref, payload, record)
        except _NotDraft as gone:
            mapping.target_state = "booked"
            return Outcome("skipped", f"{_booked(mapping)} ({gone})")
        mapping.target_ref, mapping.target_state = guid, "draft"
        problem, stamp = self._check_totals(INVOICES, guid, stamp, order.total, planned, payload, record)
        if problem:
            return Outcome("warning", problem, action, guid)
        if self.settings["document_type"] == "booked":
            number = self._book(INVOICES, guid, stamp, record)
            mapping.target_state, mapping.data = "booked", {**(mapping.data or {}), "number": number}
        return Outcome(action, "", action, guid)

    def _prepare(self, document: Order | CreditNote, record: Record, claim: Claim) -> tuple[Plan, str] | Outcome:
        """The document's lines planned and its contact (made if need be); an Outcome when it cannot be sent."""
        planned = transforms.plan(document.lines, document.country_code, self.chart(), self.settings)
        if planned.problems:
            return Outcome("held", "; ".join(planned.problems) + f". Then save the settings ({SETTINGS_LINK})")
        contact = self._contact(document.customer, record, claim)
        if isinstance(contact, Outcome):
            return contact
        return planned, contact

    def _locate(self, kind: str, key: str) -> tuple[str, str] | None:
        """(Guid, "draft" or "booked") of the document IEX made for the record of this key (the end of its
        ExternalReference, after the shop's reference), if there is one."""
        params = {"freeTextSearch": key, "fields": "Guid,ExternalReference,Status"}
        for document in self._list(kind, params):
            if transforms.made_for(str(document.get("ExternalReference") or ""), key):
                return str(document["Guid"]), "draft" if document.get("Status") == "Draft" else "booked"
        return None

    def _save(self, kind: str, guid: str, payload: dict[str, Any], record: Record) -> tuple[str, str]:
        """Create the document, or update the draft `guid` with its current Timestamp: (Guid, new Timestamp)."""
        title = document_title(kind)
        if not guid:
            record("sent", {"method": "POST", "path": kind, "body": payload}, f"{title} sent")
            answer = self._v1("POST", kind, json=payload)
            record("answer", answer, f"Dinero's answer: {title.lower()} {answer['Guid']} saved")
            return str(answer["Guid"]), str(answer["TimeStamp"])
        for _ in range(UPDATE_TRIES):
            current = self._read(kind, guid)
            if current.get("Status") != "Draft":
                raise _NotDraft(f"it is {str(current.get('Status', 'booked')).lower()} in Dinero")
            body = {**payload, "Timestamp": current["TimeStamp"]}
            record(
                "sent",
                {"method": "PUT", "path": f"v1.2/{kind}/{guid}", "body": body},
                f"{title} sent again, changed",
            )
            try:
                answer = self._call("PUT", f"v1.2/{self._org()}/{kind}/{guid}", json=body)
            except http.PermanentError as exc:
                if _code(exc) == NOT_DRAFT:
                    raise _NotDraft("booked in Dinero while IEX updated it") from None
                if _code(exc) != STALE:
                    raise
                record("answer", exc.body, "Changed in Dinero since it was read (error 58): read again")
                continue
            record("answer", answer, f"Dinero's answer: {title.lower()} {guid} updated")
            return guid, str(answer["TimeStamp"])
        raise http.TransientError(f"{guid} kept changing in Dinero while IEX updated it: trying again later")

    def _read(self, kind: str, guid: str) -> dict[str, Any]:
        try:
            return dict(self._v1("GET", f"{kind}/{guid}"))
        except http.PermanentError as exc:
            if exc.status == 404:
                raise http.PermanentError(
                    f"Draft {guid} no longer exists in Dinero: it was deleted there, so IEX does not make it again",
                    status=404,
                ) from None
            raise

    def _check_totals(
        self,
        kind: str,
        guid: str,
        stamp: str,
        expected: Decimal,
        planned: Plan,
        payload: dict[str, Any],
        record: Record,
    ) -> tuple[str | None, str]:
        """Compare Dinero's total and VAT with the shop's. Within the rounding threshold a rounding line (without VAT)
        makes the total equal; above it the document stays a draft and the Log says "Error in totals validation".
        (the message or None, the document's Timestamp)."""
        document = self._read_made(kind, guid, record)
        total, vat = money(document.get("TotalInclVat")), money(document.get("TotalVat"))
        difference = total - expected
        mismatch = (
            f"Error in totals validation: Dinero's total {total} (VAT {vat}) differs from the shop's {expected} "
            f"(tax {planned.vat}) by {difference}; the document stays a draft"
        )
        threshold = Decimal(str(self.settings["rounding_threshold"]))
        if abs(difference) > threshold or abs(vat - planned.vat) > threshold:
            return mismatch, str(document["TimeStamp"])
        if not difference or not self.settings["correction_line"]:
            return None, str(document["TimeStamp"])
        rounding = transforms.rounding_line(-difference, self.settings).payload(self.settings["unit"])
        corrected = {**payload, "ProductLines": [*payload["ProductLines"], rounding]}
        try:
            self._save(kind, guid, corrected, record)
        except _NotDraft:
            return f"{mismatch}: booked in Dinero before a rounding line could go on it", str(
                document["TimeStamp"]
            )
        document = self._read_made(kind, guid, record)
        left = money(document.get("TotalInclVat")) - expected
        return (f"{mismatch} (still {left} after a rounding line)" if left else None), str(document["TimeStamp"])

    def _read_made(self, kind: str, guid: str, record: Record) -> dict[str, Any]:
        """The document as Dinero made it (its totals worked out), noted for the Log in its words."""
        document = self._read(kind, guid)
        note_document(record, self._document, document, kind, how="as Dinero made it")
        return document

    def _document(self, document: dict[str, Any], kind: str) -> Document:
        return read_document(document, kind, self._org(), self.chart())

    def _book(self, kind: str, guid: str, stamp: str, record: Record) -> str:
        """Book the draft; its number. Changed meanwhile (58): read again and book; booked meanwhile (52): done."""
        for _ in range(UPDATE_TRIES):
            try:
                answer = self._v1("POST", f"{kind}/{guid}/book", json={"Timestamp": stamp})
            except http.PermanentError as exc:
                if _code(exc) not in (STALE, NOT_DRAFT):
                    raise
                current = self._read(kind, guid)
                if current.get("Status") != "Draft":
                    return str(current.get("Number") or "")
                stamp = str(current["TimeStamp"])
                continue
            record("answer", answer, f"Dinero's answer: booked as {document_title(kind, answer.get('Number'))}")
            return str(answer.get("Number") or "")
        raise http.TransientError(f"{guid} kept changing in Dinero while IEX booked it: trying again later")

    def _contact(self, customer: Customer, record: Record, claim: Claim) -> str | Outcome:
        """The contact's Guid: found by the module's key, else made (when allowed). Two orders of one new customer at
        once make it once: the second waits for the first's claim on the key, then finds what it made."""
        match = self.settings["customer_match"]
        condition = transforms.contact_filter(customer, match)
        if condition:
            found = self._find_contact(condition)
            said = f"contact {found}" if found else "not in Dinero yet"
            looked = f"Customer looked up by {match.replace('_', ' ')}: {said}"
            record("looked up", {"queryFilter": condition, "ContactGuid": found or None}, looked)
            if found:
                return found
        if not self.settings["allow_customer_create"]:
            return Outcome(
                "failed",
                f"No contact in Dinero with {match.replace('_', ' ')} of the order, and creating them is off",
            )
        if condition:
            claim(f"contact {condition.lower()}")  # Busy while another transfer holds it
            if found := self._find_contact(condition):
                return found  # made by the transfer that held the claim
        payload = transforms.contact_payload(customer, self.settings)
        record("sent", {"method": "POST", "path": "contacts", "body": payload}, "New customer sent")
        answer = self._v1("POST", "contacts", json=payload)
        record("answer", answer, f"Customer created in Dinero: contact {answer['ContactGuid']}")
        return str(answer["ContactGuid"])

    def _find_contact(self, condition: str) -> str:
        params = {"queryFilter": condition, "fields": "ContactGuid,Name", "pageSize": 1}
        found = self._v1("GET", "contacts", params=params)["Collection"]
        return str(found[0]["ContactGuid"]) if found else ""

    def _cancel(self, order: Order, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
        """A cancelled order: its draft deleted; once booked, what its refunds have not credited yet is credited."""
        if not mapping.target_ref:
            return Outcome("skipped", "Cancelled in the shop before it was transferred")
        if mapping.target_state in ("deleted", "credited"):
            return Outcome("skipped", "Cancelled in the shop; its document was handled then")
        guid = mapping.target_ref
        if mapping.target_state == "draft":
            try:
                if self._delete(INVOICES, guid, record):
                    mapping.target_state = "deleted"
                    done = f"Cancelled in the shop: draft {guid} deleted in Dinero"
                    for refund in order.refunds:  # their draft credit notes credit nothing now
                        found = self._locate(CREDIT_NOTES, transforms.key(refund, "refund"))
                        if found and found[1] == "draft" and self._delete(CREDIT_NOTES, found[0], record):
                            done += f", and the draft credit note {found[0]} of its refund"
                    return Outcome("updated", done, "updated", guid)
            except http.PermanentError as exc:
                if exc.status != 404:
                    raise
                mapping.target_state = "deleted"
                return Outcome("updated", f"Cancelled in the shop; draft {guid} was gone already")
            mapping.target_state = "booked"
        if order.deleted:
            return Outcome(
                "skipped",
                f"Deleted in the shop; {_booked(mapping)} is left as it is (credit it there if the sale did not happen)",
            )
        return self._credit_the_rest(order, mapping, record, claim)

    def _delete(self, kind: str, guid: str, record: Record) -> bool:
        """Delete the draft (with its current Timestamp); False when it was booked meanwhile."""
        for _ in range(UPDATE_TRIES):
            current = self._read(kind, guid)
            if current.get("Status") != "Draft":
                return False
            record(
                "sent",
                {"method": "DELETE", "path": f"{kind}/{guid}"},
                f"{document_title(kind)} {guid} sent to be deleted",
            )
            try:
                self._v1("DELETE", f"{kind}/{guid}", json={"Timestamp": current["TimeStamp"]})
            except http.PermanentError as exc:
                if _code(exc) not in (STALE, NOT_DRAFT):
                    raise
                continue  # changed or booked meanwhile: read again
            return True
        raise http.TransientError(f"{guid} kept changing in Dinero while IEX deleted it: trying again later")

    def _credit_the_rest(self, order: Order, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
        """The booked invoice of a cancelled order: a credit note for what is left of the order."""
        mapping.data = {**(mapping.data or {}), "refunds": order.refunds}
        remaining = [line for line in order.current_lines if line.gross]
        if not remaining and order.left > 0:
            return Outcome(
                "failed",
                f"Cancelled in the shop after refunds: {order.left} {order.currency} of the booked invoice is not "
                "credited, and the shop does not say which of its lines that is: credit it in Dinero",
            )
        if not remaining:
            mapping.target_state = "credited"
            return Outcome("skipped", "Cancelled in the shop; its refunds credited the booked invoice in full")
        credit = order.cancellation(remaining)
        found = self._locate(CREDIT_NOTES, transforms.key(credit.source_ref, "refund"))
        outcome = (
            Outcome("created", "", "created", found[0]) if found else self._credit(credit, mapping, record, claim)
        )
        if outcome.status not in ("created", "warning"):
            return outcome
        mapping.target_state = "credited"
        mapping.data["credit_note"] = outcome.target_ref
        done = f"Cancelled in the shop: credit note {outcome.target_ref} for invoice {mapping.target_ref}"
        if outcome.status == "warning":
            return Outcome("warning", f"{done}. {outcome.reason}", "updated", mapping.target_ref)
        return Outcome("updated", done, "updated", mapping.target_ref)

    # --- credit notes --------------------------------------------------------------------------------------

    def send_credit_note(
        self, credit: CreditNote, invoice: Mapping, mapping: Mapping, record: Record, claim: Claim
    ) -> Outcome:
        """A refund of an order whose invoice exists: a credit note for what was refunded, for that invoice (Dinero
        links them: CreditNoteFor). Booked when the module books and its invoice is booked."""
        if mapping.target_ref:
            return Outcome("skipped", f"Credit note {mapping.target_ref} was made before")
        if skipped := _not_credited(credit, invoice):
            return Outcome("skipped", skipped)
        if found := self._locate(CREDIT_NOTES, transforms.key(credit.source_ref, "refund")):
            mapping.target_ref, mapping.target_state = found  # made by an attempt that died after
            return Outcome("created", "", "created", mapping.target_ref)
        outcome = self._credit(credit, invoice, record, claim)
        if outcome.target_ref:
            mapping.target_ref = outcome.target_ref
            mapping.target_state = "booked" if "Booked" in outcome.reason else "draft"
        return outcome

    def _credit(self, credit: CreditNote, invoice: Mapping, record: Record, claim: Claim) -> Outcome:
        prepared = self._prepare(credit, record, claim)
        if isinstance(prepared, Outcome):
            return prepared
        planned, contact = prepared
        payload = transforms.credit_note_document(credit, invoice.target_ref, contact, planned, self.settings)
        guid, stamp = self._save(CREDIT_NOTES, "", payload, record)
        problem, stamp = self._check_totals(CREDIT_NOTES, guid, stamp, credit.total, planned, payload, record)
        if problem:
            return Outcome("warning", problem, "created", guid)
        said = f"Credit note for invoice {invoice.target_ref}"
        if invoice.target_state in ("booked", "credited") and self.settings["document_type"] == "booked":
            said = f"Booked credit note {self._book(CREDIT_NOTES, guid, stamp, record)} for invoice {invoice.target_ref}"
        return Outcome("created", said, "created", guid)

    # --- products and stock --------------------------------------------------------------------------------

    def send_product(self, product: Product, mapping: Mapping, record: Record) -> Outcome:
        payload = transforms.product_payload(product, self.chart(), self.settings)
        if isinstance(payload, str):
            return Outcome("skipped", f"Product {product.sku}: {payload}")
        condition = f"ProductNumber eq '{product.sku.replace(chr(39), chr(39) * 2)}'"
        found = self._v1(
            "GET", "products", params={"queryFilter": condition, "fields": "ProductGuid,ProductNumber"}
        )
        existing = found["Collection"]
        if existing:
            guid = str(existing[0]["ProductGuid"])
            record(
                "sent",
                {"method": "PUT", "path": f"products/{guid}", "body": payload},
                f"Product {product.sku} sent, changed",
            )
            answer, action = self._v1("PUT", f"products/{guid}", json=payload), "updated"
        else:
            record(
                "sent", {"method": "POST", "path": "products", "body": payload}, f"New product {product.sku} sent"
            )
            answer, action = self._v1("POST", "products", json=payload), "created"
        record("answer", answer, f"Product {product.sku} {action} in Dinero")
        mapping.target_ref, mapping.target_state = product.sku, "product"
        return Outcome(action, "", action, product.sku)

    def stock_levels(self) -> list[StockLevel]:
        raise http.PermanentError("Dinero keeps no stock levels")  # the stock flow is not offered (SYSTEM)


class _NotDraft(Exception):
    """The document is no longer a draft (booked in Dinero): it is not changed."""


def _code(exc: http.HTTPError) -> int | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    try:
        return int(body.get("errorCode") or body.get("code") or 0) or None
    except (TypeError, ValueError):
        return None


def _explained(exc: http.PermanentError) -> http.PermanentError:
    """Dinero's error in words: its message and each field it refused; Dinero Pro named when it is what is missing."""
    body = exc.body if isinstance(exc.body, dict) else {}
    if _code(exc) == NO_PRO:
        message = (
            "This Dinero organisation has no Dinero Pro: Dinero opens its API to Pro organisations only (upgrade "
            "in Dinero > Settings > Subscription)"
        )
    else:
        message = str(body.get("errorMessage") or body.get("message") or exc.message)
        fields = body.get("validationErrors") or {}
        if isinstance(fields, dict) and fields:
            message += ": " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        if not message.startswith("Dinero"):
            message = f"Dinero answered {exc.status}: {message}"
    return http.PermanentError(message[:1000], status=exc.status, body=exc.body)


def _not_credited(credit: CreditNote, invoice: Mapping) -> str:
    """Why a refund makes no credit note, whatever it refunds: its order's document is one that is not credited."""
    if invoice.target_state == "deleted":
        return f"The order was cancelled before it was booked: its draft {invoice.target_ref} was deleted, so nothing is credited"
    data = invoice.data if isinstance(invoice.data, dict) else {}
    if invoice.target_state == "credited" and credit.source_ref not in data.get("refunds", []):
        made = f" (credit note {data['credit_note']})" if data.get("credit_note") else ""
        return f"The order's cancellation credited what was left of invoice {invoice.target_ref}{made}"
    return ""


def _booked(mapping: Mapping) -> str:
    number = (mapping.data or {}).get("number") if isinstance(mapping.data, dict) else None
    named = f"invoice {number}" if number else f"invoice {mapping.target_ref}"
    return f"Booked in Dinero as {named}: changes to the order are no longer sent (refunds become credit notes)"
