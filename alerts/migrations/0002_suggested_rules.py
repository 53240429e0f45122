"""The suggested alert rules, all switched off: an operator adds channels, adjusts, and switches them on.

Each watches a metric of the registry (or a live number) as the dashboard shows it; see
docs/api.md, "Alerts", for what each means and how to turn it on.
"""

from django.db import migrations

SUGGESTED = [
    {
        "name": "Daily AI cost over budget",
        "description": "Set the threshold to your daily AI budget in USD. The cost is the price-table cost of the "
        "provider calls of the last 24 hours; calls of unpriced models are left out (see Unpriced calls).",
        "kind": "metric",
        "metric": "cost_usd",
        "window_minutes": 24 * 60,
        "comparison": ">",
        "threshold": 20.0,
        "hysteresis": None,  # 10 %: resolves once the last 24 hours cost $18 or less
        "min_sample": 0,
        "consecutive": 1,
        "cooldown_minutes": 6 * 60,
    },
    {
        "name": "Provider success rate below 95 %",
        "description": "AI provider calls fail: check the providers' status pages, keys and quotas "
        "(the dashboard's Provider mix shows which one).",
        "kind": "metric",
        "metric": "provider_success_rate",
        "window_minutes": 15,
        "comparison": "<",
        "threshold": 95.0,
        "hysteresis": 2.0,  # resolves at 97 % or more
        "min_sample": 20,  # provider calls attempted in the window
        "consecutive": 2,
        "cooldown_minutes": 30,
    },
    {
        "name": "Response time p95 over 10 s",
        "description": "Replies are slow: a provider is slow or overloaded, or the server is short of capacity.",
        "kind": "metric",
        "metric": "p95_response_time_ms",
        "window_minutes": 60,
        "comparison": ">",
        "threshold": 10_000.0,  # ms
        "hysteresis": None,  # 10 %: resolves at 9 s or less
        "min_sample": 20,  # finished replies in the window
        "consecutive": 2,
        "cooldown_minutes": 60,
    },
    {
        "name": "Negative feedback over 30 %",
        "description": "More than 30 % of the rated replies got a thumbs down (satisfaction rate below 70 %): "
        "read the latest feedback on the dashboard.",
        "kind": "metric",
        "metric": "satisfaction_rate",
        "window_minutes": 3 * 60,
        "comparison": "<",
        "threshold": 70.0,
        "hysteresis": 5.0,  # resolves at 75 % or more
        "min_sample": 10,  # rated replies in the window
        "consecutive": 1,
        "cooldown_minutes": 120,
    },
    {
        "name": "Visitor waiting for a person over 10 minutes",
        "description": "A visitor asked for a person and nobody has claimed them: open the agent desk.",
        "kind": "waiting",
        "metric": "",
        "window_minutes": 60,  # unused: the queue is read as it is now
        "comparison": ">",
        "threshold": 10.0,  # minutes
        "hysteresis": None,  # resolves once nobody has waited more than 9 minutes
        "min_sample": 0,
        "consecutive": 1,
        "cooldown_minutes": 15,
    },
    {
        "name": "Provider failures in the last 10 minutes",
        "description": "AI provider calls failed (errors and broken streams; failover may still have answered).",
        "kind": "provider_failures",
        "metric": "",
        "window_minutes": 10,
        "comparison": ">=",
        "threshold": 10.0,
        "hysteresis": None,  # resolves below 9 failures
        "min_sample": 0,
        "consecutive": 1,
        "cooldown_minutes": 30,
    },
]


def create(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    for rule in SUGGESTED:
        AlertRule.objects.get_or_create(name=rule["name"], defaults={**rule, "active": False})


def remove(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(name__in=[rule["name"] for rule in SUGGESTED], active=False).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(create, remove)]
