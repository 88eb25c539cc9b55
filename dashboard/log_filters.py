"""Logging filters for the console."""

from __future__ import annotations

import logging


class RefusalsWithoutTraceback(logging.Filter):
    """A 4xx answer is a refusal, not a bug: log its line, never a traceback (Django attaches
    the PermissionDenied that made a 403). Server errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.name.startswith("django.") and isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
