"""Admin for queue pauses: both tables read-only. Pausing and resuming go through the Queues
page (`runs.queues` services), which writes the audit row; the admin never edits either."""

from __future__ import annotations

from django.contrib import admin

from .admin import ReadOnlyAdmin
from .queues import QueueEvent, QueuePause


@admin.register(QueuePause)
class QueuePauseAdmin(ReadOnlyAdmin):
    list_display = ("queue", "paused_at", "paused_by", "reason")
    search_fields = ("queue",)


@admin.register(QueueEvent)
class QueueEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "queue", "action", "actor", "reason")
    list_filter = ("action",)
    search_fields = ("queue", "actor")
    show_full_result_count = False
