"""The fault suite's parts: shops posting webhooks as Shopify does, what the stack holds, and a merchant's view."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import requests

from bench.stack import PASSWORD, Stack, wait_for
from connections.systems.shopify.webhooks import signature
from sandbox.shopify import ShopifyState

ORDERS = ShopifyState(seed=11)  # one generator for the whole suite: order ids are unique in the shared books
ORDERS_LOCK = threading.Lock()


class Shops:
    """Shops posting orders/create webhooks at a steady rate; a post not answered 2xx is posted again a second
    later, as Shopify redelivers. `accepted` holds the ids of the orders answered 2xx."""

    def __init__(self, stack: Stack, shops: list[dict], rate: float = 4.0) -> None:
        self.stack, self.shops, self.rate = stack, shops, rate
        self.accepted: list[str] = []
        self.refused: dict[str, int] = {}  # what the shops were answered before they were accepted
        self.stopped = threading.Event()
        self.pool = ThreadPoolExecutor(8)
        self.posts: list[Future] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Shops:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.pool.shutdown(wait=True)
        for post in self.posts:
            post.result()  # an order never accepted fails the test

    def _run(self) -> None:
        for shop in itertools.cycle(self.shops):
            if self.stopped.wait(1 / self.rate):
                return
            with ORDERS_LOCK:
                order = ORDERS.create_order({"financial_status": "paid", "country": "DK"})
            self.posts.append(self.pool.submit(self.post, shop, order))

    def post(self, shop: dict, order: dict, topic: str = "orders/create") -> None:
        body = json.dumps(order).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Event-Id": f"event-{order['id']}-{topic}",
            "X-Shopify-Hmac-Sha256": signature(shop["secret"], body),
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = requests.post(self.stack.url + shop["hook"], data=body, headers=headers, timeout=10)
                outcome = str(answer.status_code)
                if answer.ok:
                    self.accepted.append(str(order["id"]))
                    return
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.refused[outcome] = self.refused.get(outcome, 0) + 1
            time.sleep(1)
        raise AssertionError(f"order {order['id']} was never accepted: {self.refused}")


class Books:
    """What the stack's database and the sandbox's e-conomic hold."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def query(self, sql: str, *params: object) -> list[tuple]:
        for _ in range(20):  # the test may ask while PostgreSQL restarts
            try:
                with psycopg.connect(self.stack.database_url, connect_timeout=3) as db:
                    return db.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                time.sleep(0.5)
        raise AssertionError("the stack's PostgreSQL does not answer")

    def settle(self, accepted: list[str], timeout: float = 120) -> dict[str, tuple[str, str, int]]:
        """Wait until every accepted order's transfer has finished; {order id: (status, reason, attempts)}."""

        def finished():
            rows = self.query(
                "SELECT source_ref, status, reason, attempts FROM transferlog_transfer WHERE source_ref = ANY(%s)",
                accepted,
            )
            waiting = self.query("SELECT count(*) FROM connections_delivery WHERE status = 'received'")[0][0]
            transfers = {ref: (status, reason, attempts) for ref, status, reason, attempts in rows}
            open_ = [
                ref for ref, (status, _, _) in transfers.items() if status in ("pending", "retrying", "running")
            ]
            return transfers if len(transfers) == len(set(accepted)) and not open_ and not waiting else None

        try:
            return wait_for(finished, timeout, "every accepted order's transfer to finish")
        except TimeoutError:
            rows = self.query(
                "SELECT status, count(*) FROM transferlog_transfer WHERE source_ref = ANY(%s) GROUP BY 1", accepted
            )
            rows += self.query(
                "SELECT status, reason FROM transferlog_transfer WHERE source_ref = ANY(%s) "
                "AND status IN ('pending', 'retrying', 'running')",
                accepted,
            )
            logs = {
                name: s.output()[-1500:] for name, s in self.stack.services.items() if name.startswith("worker")
            }
            raise AssertionError(f"not settled: {rows} of {len(set(accepted))}\n{logs}") from None

    def documents(self) -> dict[str, int]:
        """How many e-conomic documents name each order (references.other is iex:<order id>)."""
        counts: dict[str, int] = {}
        for draft in self.stack.sandbox("state")["economic"]["drafts"]:
            ref = draft.get("references", {}).get("other", "").removeprefix("iex:")
            counts[ref] = counts.get(ref, 0) + 1
        return counts

    def exactly_once(self, accepted: list[str], timeout: float = 120) -> None:
        transfers = self.settle(accepted, timeout)
        not_created = {ref: t for ref, t in transfers.items() if t[0] != "created"}
        assert not not_created, f"transfers that did not end created: {not_created}"
        documents = self.documents()
        assert [ref for ref in accepted if documents.get(ref) != 1] == [], "an order not in e-conomic exactly once"
        assert len(self.query("SELECT 1 FROM transferlog_transfer WHERE source_ref = ANY(%s)", accepted)) == len(
            set(accepted)
        ), "an order with more than one transfer"


class Merchant:
    """The owner of an integration, logged in to the dashboard."""

    def __init__(self, stack: Stack, shop: dict) -> None:
        self.stack, self.shop = stack, shop
        self.session = requests.Session()
        login = f"{stack.url}/accounts/login/"
        self.session.get(login, timeout=10)
        answer = self.session.post(
            login,
            data={
                "login": shop["owner"],
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.session.cookies["csrftoken"],
            },
            headers={"Referer": login},
            timeout=10,
        )
        assert answer.ok and "sessionid" in self.session.cookies, answer.text[-500:]

    def page(self, path: str = "") -> str:
        answer = self.session.get(f"{self.stack.url}{self.shop['url']}{path}", timeout=10)
        assert answer.status_code == 200, answer.text[-500:]
        return answer.text

    def home_says_created_today(self, count: int) -> bool:
        return f"{datetime.now(UTC):%-d %b}: {count} created" in self.page()

    def fold_out(self, code: str) -> str:
        return re.sub(r"\s+", " ", self.page(f"log/{code}/"))


def healthy(stack: Stack) -> bool:
    answer = requests.get(f"{stack.url}/healthz", timeout=5)
    return answer.status_code == 200
