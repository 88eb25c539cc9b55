import django.utils.timezone
from django.db import migrations, models

# PostgreSQL only: the writing transaction's id, so readers never skip a row whose transaction
# committed after a later id's (see runs/changelog/reader.py). Django has no xid8 field, and
# the column is written by its default, so the model does not declare it.
TXID = {
    "postgresql": [
        "ALTER TABLE runs_change ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",
        "CREATE INDEX change_txid_id ON runs_change (txid, id)",
    ],
}


def add_txid(apps, schema_editor):
    for sql in TXID.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


def drop_txid(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS change_txid_id")
        schema_editor.execute("ALTER TABLE runs_change DROP COLUMN IF EXISTS txid")


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0004_runpage_bulk"),
    ]

    operations = [
        migrations.CreateModel(
            name="Change",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("run_id", models.UUIDField()),
                ("version", models.PositiveIntegerField()),
                ("kind", models.CharField(choices=[("created", "created"), ("transition", "transition"), ("update", "update"), ("deleted", "deleted")], max_length=16)),
                ("from_state", models.CharField(blank=True, choices=[("scheduled", "Scheduled"), ("ready", "Ready"), ("leased", "Leased"), ("running", "Running"), ("retry_wait", "Retry wait"), ("suspended", "Suspended"), ("completed", "Completed"), ("failed", "Failed"), ("canceled", "Canceled")], max_length=16)),
                ("to_state", models.CharField(blank=True, choices=[("scheduled", "Scheduled"), ("ready", "Ready"), ("leased", "Leased"), ("running", "Running"), ("retry_wait", "Retry wait"), ("suspended", "Suspended"), ("completed", "Completed"), ("failed", "Failed"), ("canceled", "Canceled")], max_length=16)),
                ("queue", models.CharField(max_length=100)),
                ("name", models.CharField(max_length=200)),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("actor", models.CharField(blank=True, default="", max_length=200)),
                ("reason", models.TextField(blank=True, default="")),
            ],
            options={
                "ordering": ("id",),
                "indexes": [models.Index(fields=["at"], name="change_at")],
            },
        ),
        migrations.CreateModel(
            name="ChangeReader",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("txid", models.BigIntegerField(default=0)),
                ("change_id", models.BigIntegerField(default=0)),
                ("seen_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RunPython(add_txid, drop_txid),
    ]
