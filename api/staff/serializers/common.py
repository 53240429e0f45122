"""Pieces every staff answer shares: the period and the filters it covers."""

from __future__ import annotations

from rest_framework import serializers


class PeriodSerializer(serializers.Serializer):
    """Whole local days (TIME_ZONE), `start` to `end` inclusive."""

    start = serializers.DateField()
    end = serializers.DateField()
    days = serializers.IntegerField(min_value=1)

    class Meta:
        ref_name = "StaffPeriod"


class FiltersSerializer(serializers.Serializer):
    """The filters the numbers were narrowed by (null: not narrowed)."""

    user_type = serializers.CharField(allow_null=True)
    provider = serializers.CharField(allow_null=True)
    source = serializers.CharField(allow_null=True)
    external_user_id = serializers.CharField(allow_null=True)

    class Meta:
        ref_name = "StaffFilters"


def number(help_text: str = "", **kwargs: object) -> serializers.FloatField:
    """A number that is null when there is no data (a rate over nothing is not 0 %)."""
    return serializers.FloatField(allow_null=True, help_text=help_text, **kwargs)  # type: ignore[arg-type]
