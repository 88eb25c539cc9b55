"""Create the "Run operators" group holding every run action permission.

post_migrate (which normally creates model permissions) has not run yet when this migration
runs on a fresh database, so the content type and permissions are created here if missing.
"""

from django.db import migrations

GROUP = "Run operators"
PERMISSIONS = (
    ("cancel_run", "Can cancel runs"),
    ("suspend_run", "Can suspend running runs"),
    ("resume_run", "Can resume suspended runs"),
    ("retry_run", "Can retry a backing-off run now"),
    ("rerun_run", "Can rerun finished runs"),
)


def create_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    db = schema_editor.connection.alias
    content_type, _ = ContentType.objects.using(db).get_or_create(app_label="runs", model="run")
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    for codename, name in PERMISSIONS:
        permission, _ = Permission.objects.using(db).get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(
        name=GROUP
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
