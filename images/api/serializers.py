from __future__ import annotations

from rest_framework import serializers

from images.models import ImageBuild


class ImageBuildSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reference = serializers.CharField(read_only=True, help_text="registry/repository:tag@digest once pushed")

    class Meta:
        model = ImageBuild
        fields = ["id", "revision", "trigger", "builder", "status", "requested_by", "image", "digest", "reference",
                  "size", "error", "log", "created", "started", "finished", "heartbeat", "attempts"]
        read_only_fields = [f for f in fields if f != "revision"]


class ImageBuildRequestSerializer(serializers.Serializer):
    revision = serializers.UUIDField(help_text="the ready revision whose image to (re)build")
