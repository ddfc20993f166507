"""Operator commands: each says what it does in one line; create_integration, retry_transfers, run_due_jobs,
purge_transfers, seed_demo."""

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from iex.lib import queueing
from iex.models import Integration, Role
from scheduling.models import Job
from tests.conftest import make_user
from transferlog.models import Status, Transfer

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- every command ----------------------------------------------------------------------------------------

OURS = {"iex", "transferlog", "billing", "connections", "scheduling", "dashboard"}


def test_every_command_has_a_one_line_help(monkeypatch):
    from django.core.management import get_commands, load_command_class

    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps to the terminal: a long line stays one line here
    ours = {name: app for name, app in get_commands().items() if app in OURS}
    assert set(ours) >= {
        "create_integration", "retry_transfers", "run_due_jobs", "seed_demo", "sweep_inbox", "purge_transfers",
        "purge_deliveries", "usage_report", *BEAT_COMMANDS.values(),
    }  # fmt: skip
    for name, app in ours.items():
        command = load_command_class(app, name)
        usage, description, *_ = command.create_parser("manage.py", name).format_help().split("\n\n")
        assert usage.startswith(f"usage: manage.py {name}")
        assert "\n" not in description and description == command.help.strip(), name
        assert description.endswith(".") and len(description) > 20, name


# Beat's jobs, each also a command an operator can run (STYLE.md: "beat only calls it").
BEAT_COMMANDS = {
    "scheduling.tasks.dispatch_due_jobs": "run_due_jobs",
    "connections.tasks.sweep_inbox": "sweep_inbox",
    "transferlog.tasks.purge_transfers": "purge_transfers",
    "connections.tasks.purge_deliveries": "purge_deliveries",
    "billing.tasks.roll_periods": "roll_billing_periods",
    "billing.tasks.release_held": "release_held_transfers",
    "connections.tasks.release_let_in": "release_let_in",
    "billing.tasks.ask_again_about_packs": "ask_again_about_packs",
    "dashboard.tasks.send_error_digests": "send_error_digests",
    "dashboard.tasks.send_status_reports": "send_status_reports",
}


def test_every_beat_job_is_also_a_command_that_ends_with_a_summary_line(settings):
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == set(BEAT_COMMANDS)
    for command in BEAT_COMMANDS.values():
        out = run(command, *(["--once"] if command == "run_due_jobs" else []))  # run_due_jobs loops without
        assert re.fullmatch(rf"{command}: \w.*\n", out.splitlines(keepends=True)[-1]), out


# --- create_integration ------------------------------------------------------------------------------------


def test_create_integration_for_an_existing_user_on_a_trial(db):
    owner = make_user("founder@shop.example")
    out = run("create_integration", "--name", "  Fjord   Coffee ", "--owner", "Founder@Shop.example")
    integration = Integration.objects.get(name="Fjord Coffee")
    assert out.startswith(f"create_integration: created {integration.number} (Fjord Coffee) owned by founder@")
    assert integration.members.get().user == owner
    assert integration.members.get().role == Role.OWNER
    sub = integration.subscription
    assert (sub.plan.code, sub.status) == ("standard", "trialing")
    assert "Standard trial until" in out


def test_create_integration_on_another_plan(db):
    make_user("founder@shop.example")
    run("create_integration", "--name", "Big Shop", "--owner", "founder@shop.example", "--plan", "premium")
    assert Integration.objects.get(name="Big Shop").subscription.plan.code == "premium"


def test_create_integration_refuses_an_unknown_owner_naming_the_email(db):
    with pytest.raises(
        CommandError, match=re.escape("No user has the email nobody@shop.example; pass --create-user")
    ):
        run("create_integration", "--name", "Shop", "--owner", "nobody@shop.example")
    assert not Integration.objects.exists()


def test_create_integration_can_create_the_owner_without_a_password(db):
    out = run("create_integration", "--name", "Shop", "--owner", "New@Shop.example", "--create-user")
    user = User.objects.get(email="new@shop.example")
    assert not user.has_usable_password()
    assert EmailAddress.objects.filter(user=user, email="new@shop.example", verified=True, primary=True).exists()
    assert Integration.objects.get(name="Shop").members.get().user == user
    assert "(new user, no password yet)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Shop", "--owner", "owner@shop.example", "--plan", "gold"], "No plan 'gold'; the plans are: "),
        (["--name", "Shop", "--owner", "not-an-email"], "--owner must be an email address"),
        (["--name", "   ", "--owner", "owner@shop.example"], "--name must be 1 to 100 characters"),
        (["--owner", "owner@shop.example"], "the following arguments are required: --name"),
    ],
)
def test_create_integration_refuses_bad_arguments(personas, args, message):
    before = Integration.objects.count()
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_integration", *args)
    assert Integration.objects.count() == before


# --- retry_transfers ---------------------------------------------------------------------------------------


def transfer(connection, ref: str, status: str, updated: datetime | None = None) -> Transfer:
    made = Transfer(
        integration_id=connection.integration_id, connection=connection, connection_label=connection.label,
        entity=connection.entity, source_ref=ref, reference=f"#{ref}", source_data={"id": ref},
    )  # fmt: skip
    assert made.save_received("As received")  # and not queued: the tests below see what the commands queue
    Transfer.objects.filter(pk=made.pk).update(status=status, updated=updated or timezone.now())
    return made


@pytest.fixture
def enqueued(monkeypatch):
    """What the retry enqueued (Transfer.retry enqueues after commit; the test's transaction never commits)."""
    ids: list[int] = []
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: ids.append(self.pk))
    return ids


def test_retry_transfers_queues_the_integrations_failed_transfers(connected, personas, enqueued):
    failed = [transfer(connected, str(n), Status.FAILED) for n in range(3)]
    held = transfer(connected, "9", Status.HELD)
    out = run("retry_transfers", "--integration", personas.integration.number)
    assert out == f"retry_transfers: queued 3 failed transfers of {personas.integration}\n"
    assert sorted(enqueued) == sorted(t.pk for t in failed)
    for t in failed:
        t.refresh_from_db()
        assert t.status == Status.PENDING
        assert t.states.filter(kind="retry", note__contains="manage.py retry_transfers").exists()
    held.refresh_from_db()
    assert held.status == Status.HELD


def test_retry_transfers_queues_held_ones_when_asked(connected, personas, enqueued):
    transfer(connected, "1", Status.FAILED)
    held = transfer(connected, "2", Status.HELD)
    out = run("retry_transfers", "--integration", personas.integration.number, "--status", "held")
    assert "queued 1 held transfers" in out
    assert enqueued == [held.pk]


def test_retry_transfers_since_a_day_or_a_moment(connected, personas, enqueued):
    old = transfer(connected, "1", Status.FAILED, datetime(2026, 11, 19, 23, 0, tzinfo=UTC))
    morning = transfer(connected, "2", Status.FAILED, datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    noon = transfer(connected, "3", Status.FAILED, datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    number = personas.integration.number
    assert "queued 1 failed" in run("retry_transfers", "--integration", number, "--since", "2026-11-20T10:00")
    assert enqueued == [noon.pk]
    assert "queued 1 failed" in run("retry_transfers", "--integration", number, "--since", "2026-11-20")
    assert enqueued == [noon.pk, morning.pk]
    old.refresh_from_db()
    assert old.status == Status.FAILED


def test_retry_transfers_dry_run_only_counts(connected, personas, enqueued):
    failed = transfer(connected, "1", Status.FAILED)
    out = run("retry_transfers", "--integration", personas.integration.number, "--dry-run")
    assert out == f"retry_transfers: would queue 1 failed transfers of {personas.integration}\n"
    assert enqueued == []
    failed.refresh_from_db()
    assert failed.status == Status.FAILED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--integration", "999999"], "No integration '999999'"),
        (["--integration", "{number}", "--since", "yesterday"], "--since must be YYYY-MM-DD or an ISO datetime"),
        (["--integration", "{number}", "--since", "2026-13-01"], "--since must be YYYY-MM-DD or an ISO datetime"),
        (["--integration", "{number}", "--status", "created"], "invalid choice: 'created'"),
        ([], "the following arguments are required: --integration"),
    ],
)
def test_retry_transfers_refuses_bad_arguments(connected, personas, enqueued, args, message):
    failed = transfer(connected, "1", Status.FAILED)
    args = [arg.format(number=personas.integration.number) for arg in args]
    with pytest.raises(CommandError, match=re.escape(message)):
        run("retry_transfers", *args)
    failed.refresh_from_db()
    assert failed.status == Status.FAILED and enqueued == []


def test_retry_transfers_refuses_an_inactive_integration(connected, personas, enqueued):
    transfer(connected, "1", Status.FAILED)
    personas.integration.set_active(False, personas.owner)
    with pytest.raises(CommandError, match="is inactive: its transfers would only be skipped"):
        run("retry_transfers", "--integration", personas.integration.number)
    assert enqueued == []


# --- run_due_jobs ------------------------------------------------------------------------------------------


@pytest.fixture
def dispatched(monkeypatch):
    ids: list[int] = []
    monkeypatch.setattr(queueing, "publish", lambda name, job_id: ids.append(job_id))
    return ids


def test_run_due_jobs_once_dispatches_what_is_due(connected, dispatched):
    job = Job.ensure_for(connected)
    job.start_now()
    assert run("run_due_jobs", "--once") == "run_due_jobs: dispatched 1 jobs\n"
    assert dispatched == [job.pk]
    assert run("run_due_jobs", "--once") == "run_due_jobs: dispatched 0 jobs\n"  # moved on a period
    job.refresh_from_db()
    assert job.next_run_at > timezone.now() + timedelta(minutes=4)


# Committed for real: each round lets go of a connection the database closed meanwhile, which inside a test's
# transaction would end it.
@pytest.mark.django_db(transaction=True)
def test_run_due_jobs_loops_until_interrupted_and_survives_a_failed_round(connected, dispatched, monkeypatch):
    from scheduling import tasks

    Job.ensure_for(connected).start_now()
    rounds = iter([None, RuntimeError("broker down"), None])
    real_dispatch = tasks.dispatch

    def dispatch():
        if isinstance(error := next(rounds), Exception):
            raise error
        return real_dispatch()

    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "dispatch", dispatch)
    monkeypatch.setattr("scheduling.management.commands.run_due_jobs.time.sleep", sleep)
    out, err = StringIO(), StringIO()
    call_command("run_due_jobs", stdout=out, stderr=err)
    assert out.getvalue().splitlines() == [
        "run_due_jobs: dispatched 1 jobs",
        "run_due_jobs: dispatched 0 jobs",
        "run_due_jobs: dispatched 1 jobs in 3 rounds",
    ]
    assert "run_due_jobs: dispatch failed: RuntimeError: broker down" in err.getvalue()
    assert sleeps == [30.0, 30.0, 30.0]


# --- purge_transfers, purge_deliveries ---------------------------------------------------------------------


def test_purge_transfers_deletes_what_is_past_retention_and_says_how_many(connected, personas):
    from billing.models import Plan, Subscription
    from connections.models import Delivery

    now = timezone.now()

    def made(ref, status, days_ago):
        row = transfer(connected, ref, status)
        Transfer.objects.filter(pk=row.pk).update(created=now - timedelta(days=days_ago))
        return row

    gone = [made("1", Status.CREATED, 91), made("2", Status.FAILED, 181)]
    kept = [made("3", Status.CREATED, 89), made("4", Status.FAILED, 91), made("5", Status.HELD, 400)]
    gone[0].record("sent", {"x": 1})
    gone[0].save_states()

    def delivery(status, days_ago):
        return Delivery.objects.create(
            integration=personas.integration, module=connected.source, topic="orders/create", body=b"{}",
            status=status, received_at=now - timedelta(days=days_ago),
        )  # fmt: skip

    old_delivery = delivery(Delivery.Status.PROCESSED, 31)
    waiting = delivery(Delivery.Status.RECEIVED, 31)  # never dropped before it is handled
    recent = delivery(Delivery.Status.PROCESSED, 29)

    out = run("purge_transfers", "--batch", "1")
    assert out == (
        "purge_transfers: deleted 2 transfers (kept 90 days by the integrations' plans; failed ones twice as long)\n"
    )
    assert set(Transfer.objects.values_list("pk", flat=True)) == {t.pk for t in kept}
    assert not gone[0].states.exists()
    assert run("purge_transfers") == out.replace("deleted 2", "deleted 0")
    Subscription.of(personas.integration, Plan.objects.get(code="basic"))
    assert "(kept 30/90 days by the integrations' plans;" in run("purge_transfers")  # another integration: 90

    assert run("purge_deliveries") == "purge_deliveries: deleted 1 webhook deliveries handled over 30 days ago\n"
    assert set(Delivery.objects.values_list("pk", flat=True)) == {waiting.pk, recent.pk}
    assert not Delivery.objects.filter(pk=old_delivery.pk).exists()


# --- seed_demo ---------------------------------------------------------------------------------------------


def test_seed_demo_ends_with_a_summary_line(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run("seed_demo").splitlines()
    shopify, woocommerce = (Integration.objects.get(name=name) for name in ("Demo Shop", "Demo WooCommerce"))
    assert first[-2:] == [
        f"seed_demo: created {shopify.number} (Demo Shop) owned by demo@iex.local, shopify and economic in the "
        "sandbox",
        f"seed_demo: created {woocommerce.number} (Demo WooCommerce) owned by demo@iex.local, woocommerce and "
        "dinero in the sandbox",
    ]
    assert any("Log in at" in line and "demo@iex.local" in line for line in first)  # what `make run` shows
    assert run("seed_demo").splitlines()[-1] == first[-1].replace("created", "refreshed")
