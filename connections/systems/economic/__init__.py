"""e-conomic (accounting): orders become invoice drafts, booked invoices or orders; products are created; stock
levels are read. REST API with an app secret token and an agreement grant token."""

from connections.systems import System
from connections.systems.economic import client, forms, transforms

SYSTEM: System = System(
    kind="economic",
    label="e-conomic",
    category="accounting",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.EconomicClient,
    transforms=transforms,
)
