"""Fewer index entries per write to a run (benchmarks/tasks.py: 1.34x -> 1.39x at 1 worker).

- `Transition.run` loses its own index: `transition_run_order` (run_id, id) starts with it.
- `Run.rerun_of`'s index becomes partial (`run_rerun_of`, only reruns): the plain one took a
  NULL entry for every insert and every non-HOT update of every run.

The database side drops the two indexes by name instead of letting `AlterField` do it: on
SQLite an `AlterField` rebuilds the whole table, which loses the indexes made by raw SQL
(`run_short_id`, `run_lease_holder`).
"""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = (("runs_run", "rerun_of_id"), ("runs_transition", "run_id"))


def _plain_index(schema_editor, table: str, column: str) -> str | None:
    """The name Django gave the foreign key's own index (a hash of the table and column),
    found by what it covers: at this point nothing else indexes that column alone."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if (info["index"] and not info["unique"] and not info["primary_key"]
                and info["columns"] == [column]):
            return name
    return None


def drop_foreign_key_indexes(apps, schema_editor):
    for table, column in COLUMNS:
        name = _plain_index(schema_editor, table, column)
        if name:
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def create_foreign_key_indexes(apps, schema_editor):
    for table, column in COLUMNS:
        name = schema_editor.quote_name(f"{table}_{column}_idx")
        schema_editor.execute(f"CREATE INDEX {name} ON {table} ({column})")


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0010_rollup_delta'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='run',
                    name='rerun_of',
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True,
                        on_delete=django.db.models.deletion.SET_NULL, related_name='reruns',
                        to='runs.run'),
                ),
                migrations.AlterField(
                    model_name='transition',
                    name='run',
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE,
                        related_name='transitions', to='runs.run'),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_foreign_key_indexes, create_foreign_key_indexes),
            ],
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('rerun_of__isnull', False)),
                               fields=['rerun_of'], name='run_rerun_of'),
        ),
    ]
