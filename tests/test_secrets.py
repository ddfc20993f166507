import pytest
from cryptography.fernet import Fernet

from iex.lib import secrets


@pytest.fixture
def keys(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    return settings, old, new


def test_round_trip_and_the_ciphertext_hides_the_secret(keys):
    token = secrets.encrypt("shpat_0123456789")
    assert "shpat" not in token
    assert secrets.decrypt(token) == "shpat_0123456789"


def test_rotation_prepends_a_key_and_rotate_reencrypts(keys):
    settings, old, new = keys
    token = secrets.encrypt("s3cret")
    settings.CREDENTIALS_KEYS = [new, old]
    assert secrets.decrypt(token) == "s3cret"  # old data still reads
    rotated = secrets.rotate(token)
    settings.CREDENTIALS_KEYS = [new]
    assert secrets.decrypt(rotated) == "s3cret"
    with pytest.raises(secrets.DecryptionError):
        secrets.decrypt(token)


def test_unknown_key_raises_instead_of_returning_ciphertext(keys):
    settings, _, new = keys
    token = secrets.encrypt("s3cret")
    settings.CREDENTIALS_KEYS = [new]
    with pytest.raises(secrets.DecryptionError):
        secrets.decrypt(token)
