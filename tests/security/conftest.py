from tests.test_intake import processed, webhook  # noqa: F401 (the intake's fixtures, for hostile posts)
