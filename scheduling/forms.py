from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

LAST_DAYS = (7, 30, 90)


class StartForm(forms.Form):
    """From which date an orders connection imports: now (the default), the last days, or a date."""

    start = forms.ChoiceField(
        label="Import orders from",
        choices=[
            ("now", "Now: only orders placed or changed from now on"),
            *((str(days), f"The last {days} days") for days in LAST_DAYS),
            ("date", "A date (below)"),
        ],
        widget=forms.RadioSelect,
    )
    date = forms.DateField(label="Date", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        date = cleaned.get("date")
        if cleaned.get("start") == "date":
            if date is None:
                self.add_error("date", "Choose the date to import orders from.")
            elif date > timezone.now().date():
                self.add_error("date", "Choose a date that has passed: orders are imported from it on.")
        return cleaned

    def since(self) -> dt.datetime | None:
        """The start as a moment (a date from its midnight, UTC); None for now."""
        start = self.cleaned_data["start"]
        if start == "now":
            return None
        if start == "date":
            return dt.datetime.combine(self.cleaned_data["date"], dt.time(), tzinfo=dt.UTC)
        return timezone.now() - dt.timedelta(days=int(start))

    @staticmethod
    def initial_for(import_from: dt.datetime | None) -> dict[str, object]:
        """What the form shows of a job's start: now, or its date."""
        if import_from is None:
            return {"start": "now"}
        return {"start": "date", "date": import_from.date()}
