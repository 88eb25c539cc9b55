"""Room on every rollup and run-entry page for the next versions of its rows (PostgreSQL).

The fold updates the rows of the current buckets (and the entries of runs on the move) every
batch. With full pages each update went to another page and added an entry to every index
of the table (four on rollups); with half of a page kept free on insert, PostgreSQL updates
in place (a heap-only tuple) and prunes the older versions as it goes. Changes only what is
inserted from now on: nothing is rewritten.
"""

from django.db import migrations

FILLFACTOR = {"runs_rollup": 50, "runs_runentry": 50}


def leave_room(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, fillfactor in FILLFACTOR.items():
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def fill_pages(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in FILLFACTOR:
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0008_rollup_by_start'),
    ]

    operations = [migrations.RunPython(leave_room, fill_pages)]
