"""The "Support agents" group: members may use the agent desk (`assistant.use_desk`).

Permissions are normally created after all migrations (post_migrate); the group needs its
permission now, so this migration creates the app's permissions first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Support agents"


def add_group(apps, schema_editor):
    app_config = apps.get_app_config("assistant")
    app_config.models_module = True  # the migration state's app stub has none; create_permissions skips such apps
    create_permissions(app_config, verbosity=0, apps=apps, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(schema_editor.connection.alias).get_or_create(name=GROUP)
    permission = Permission.objects.using(schema_editor.connection.alias).get(
        content_type__app_label="assistant", codename="use_desk"
    )
    group.permissions.add(permission)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("assistant", "0005_handoff"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_group, remove_group)]
