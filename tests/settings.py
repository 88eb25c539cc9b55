"""Test configuration: production settings plus test-only speed-ups and isolation."""

import hashlib
import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-never-used-in-production")

from dashboard.settings import *  # noqa: F403
from dashboard.settings import BASE_DIR, DATABASES, RUNBOARD, VAR_DIR

# The file-backed SQLite test database lives in var/, which a fresh clone does not have.
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Several checkouts (CI's fresh clone, parallel work trees) share this machine's PostgreSQL and
# Redis: give each its own test database and hint channel.
CHECKOUT_ID = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": f"test_runboard_{CHECKOUT_ID}"}
RUNBOARD["HINT_CHANNEL"] = f"runboard-test-{CHECKOUT_ID}:changes"
