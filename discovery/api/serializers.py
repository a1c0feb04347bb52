"""The requirement a caller sends, checked field by field (a 400 names the field and what it allows), and the
answer: matches and near misses, each with its model, version, figures and sentences."""

from __future__ import annotations

from rest_framework import serializers

from discovery.selectors import EXPLAINABILITY_WORDS, MAX_LIMIT, TASKS, Answer, Found, Requirement


class RequirementSerializer(serializers.Serializer):
    task = serializers.ChoiceField(choices=TASKS, required=False, help_text="the model card's task")
    inputs = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=50,
                                   help_text="input field names one method must all take")
    catalog = serializers.UUIDField(required=False, help_text="only models published in this catalog")
    max_memory_mb = serializers.IntegerField(required=False, min_value=1,
                                             help_text="peak memory measured at onboarding")
    max_latency_ms = serializers.FloatField(required=False, min_value=0.001,
                                            help_text="the slowest method's median call, measured at onboarding")
    explainability = serializers.ListField(child=serializers.ChoiceField(choices=EXPLAINABILITY_WORDS),
                                           required=False, help_text="what the card must say it explains with")
    licences = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=20,
                                     help_text="SPDX ids, any of which the model's licence must name")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=10)

    def requirement(self) -> Requirement:
        data = self.validated_data
        return Requirement(task=data.get("task", ""), inputs=tuple(dict.fromkeys(data.get("inputs", []))),
                           catalog=str(data["catalog"]) if data.get("catalog") else "",
                           max_memory_mb=data.get("max_memory_mb"), max_latency_ms=data.get("max_latency_ms"),
                           explainability=tuple(dict.fromkeys(data.get("explainability", []))),
                           licences=tuple(dict.fromkeys(data.get("licences", []))), limit=data["limit"])


def found(item: Found) -> dict:
    revision = item.revision
    return {"solution": str(revision.solution_id), "name": revision.solution.name, "revision": str(revision.pk),
            "version": revision.version, "task": revision.task, "method": item.method,
            "peak_memory_mb": revision.peak_memory_mb, "latency_ms": revision.latency_ms,
            "licence": revision.solution.licence, "why": item.why, "misses": item.misses,
            "page": f"/models/{revision.solution_id}/", "deploy": "/api/v1/discovery/deploy"}


class AnswerSerializer(serializers.Serializer):
    """Fields declared for the OpenAPI schema; to_representation writes them (discovery.selectors.Answer)."""

    considered = serializers.IntegerField(help_text="relevant models (task, inputs, catalog), counted up to 200")
    considered_more = serializers.BooleanField(help_text="more than that are relevant")
    matches = serializers.ListField(child=serializers.DictField(), help_text=(
        "best first: solution, name, revision, version, task, method, peak_memory_mb, latency_ms, licence, why, "
        "misses (empty), page, deploy"))
    near_misses = serializers.ListField(child=serializers.DictField(), help_text="the same, fewest misses first, "
                                                                                 "each with `misses`")

    def to_representation(self, instance: Answer) -> dict:
        return {"considered": instance.considered, "considered_more": instance.more,
                "matches": [found(item) for item in instance.matches],
                "near_misses": [found(item) for item in instance.near_misses]}


class DeployChosenSerializer(serializers.Serializer):
    revision = serializers.UUIDField(help_text="the chosen version (a match's `revision`)")
    target = serializers.UUIDField(required=False, help_text="a target you may use; omitted: this host's sandboxed "
                                                             "runners if you may use them, else your first target")
    name = serializers.CharField(required=False, max_length=100, allow_blank=True)
