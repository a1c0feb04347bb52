"""/api/v1/tokens: the current user's API tokens. The plain key is answered once, when a token is
created or rotated; only its hash is kept. Tokens are personal: nobody else sees or changes them."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from acumos_portal.accounts import services
from acumos_portal.accounts.models import ApiToken
from acumos_portal.api.errors import ApiError


class ApiTokenSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(read_only=True)
    solution = serializers.UUIDField(source="solution_id", read_only=True, allow_null=True,
                                     help_text="set on a retraining hook's token: it may only push revisions of "
                                               "this solution")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "last_used", "revoked", "expires", "solution", "active"]
        read_only_fields = ["id", "prefix", "created", "last_used", "revoked", "expires", "solution", "active"]
        extra_kwargs = {"name": {"required": False, "allow_blank": True}}


class NewApiTokenSerializer(ApiTokenSerializer):
    key = serializers.SerializerMethodField(help_text="the token itself: shown this once, never again")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = [*ApiTokenSerializer.Meta.read_only_fields, "key"]

    def get_key(self, token) -> str:
        return self.context["key"]


@extend_schema(tags=["account"])
class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your API tokens, for `Authorization: Bearer <token>` or `Authorization: <login>:<token>`."""

    serializer_class = ApiTokenSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation, no user
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise exceptions.NotFound("no such token") from None

    def _answer_new(self, token: ApiToken, key: str) -> Response:
        return Response(NewApiTokenSerializer(token, context={"key": key}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request, *args, **kwargs):
        """A new token. The answer's `key` is the token: store it now, it cannot be shown again."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = services.token_create(user=request.user, name=serializer.validated_data.get("name", ""))
        return self._answer_new(token, key)

    @extend_schema(request=None, responses={201: NewApiTokenSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        """Revoke this token and answer a new one with the same name (its `key` shown once)."""
        token = self.get_object()
        if not token.active:
            raise ApiError("this token is revoked or expired; create a new one instead", code="token_revoked",
                           status_code=409)
        new, key = services.token_rotate(token=token)
        return self._answer_new(new, key)

    @extend_schema(responses={204: None})
    def destroy(self, request, *args, **kwargs):
        """Revoke the token (it stays listed, with `revoked` set, and stops working at once)."""
        services.token_revoke(token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
