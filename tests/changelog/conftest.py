"""The board's socket fixtures serve the change-log tests too."""

from tests.dashboard.conftest import operator, socket_for, viewer  # noqa: F401
