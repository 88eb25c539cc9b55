# Executor tokens for the HTTP API, and a database-only index for listing runs by name.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0002_board_operators_group"),
    ]

    operations = [
        migrations.CreateModel(
            name="ExecutorToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="The executor this token acts as (the lease owner of the runs it takes).", max_length=200)),
                ("key_id", models.CharField(editable=False, max_length=16, unique=True)),
                ("secret_sha256", models.CharField(editable=False, max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("created_by", models.CharField(blank=True, default="", editable=False, max_length=200)),
                ("revoked_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "verbose_name": "executor token",
                "ordering": ("-created_at", "-id"),
            },
        ),
        # GET /api/runs?name=…[&state=…] pages newest-first within one name (and state; without
        # a state the selector reads each state's newest rows and merges). The index is database-only
        # (no Meta entry on Run, which the core owns, so it never shows up as model drift) and
        # plain SQL that both SQLite and PostgreSQL accept.
        migrations.RunSQL(
            "CREATE INDEX run_api_name_state_changed ON runs_run (name, state, state_changed_at, id)",
            reverse_sql="DROP INDEX run_api_name_state_changed",
        ),
    ]
