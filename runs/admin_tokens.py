"""Admin for executor tokens: create (the secret is shown once), list, revoke. Never edit."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .tokens import ExecutorToken


class ExecutorTokenCreationForm(forms.ModelForm):
    """Only the executor name is chosen; the secret is generated."""

    class Meta:
        model = ExecutorToken
        fields = ("name",)


@admin.register(ExecutorToken)
class ExecutorTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "masked", "created_at", "created_by", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "key_id")
    readonly_fields = ("name", "masked", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ("revoke_tokens",)
    form = ExecutorTokenCreationForm

    def get_fields(self, request: HttpRequest, obj: ExecutorToken | None = None) -> Any:
        return ("name",) if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ExecutorToken | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ExecutorToken, form: Any, change: bool) -> None:
        if change:  # nothing of an issued token is editable; revoke and issue a new one instead
            return
        obj.created_by = request.user.get_username()
        secret = obj.generate_secret()
        obj.save()
        messages.warning(
            request,
            f"Token for executor {obj.name!r}: {secret} — copy it now, it is not shown again.",
        )

    @admin.action(description="Revoke selected tokens", permissions=("change",))
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ExecutorToken]) -> None:
        revoked = sum(token.revoke() for token in queryset)
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
