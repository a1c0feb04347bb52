"""/api/v1/image-builds: "Create microservice" from the command line, and its progress."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.response import Response

from acumos_portal.api.views import VisibleObjectMixin, forbid_unless, valid
from images import services
from images.api.serializers import ImageBuildRequestSerializer, ImageBuildSerializer
from images.selectors import visible_builds
from marketplace.selectors import can_change_solution, visible_revisions


@extend_schema(tags=["images"])
class ImageBuildViewSet(VisibleObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet):
    """Image builds of the revisions the caller may see. POST starts one (owner or admin)."""

    serializer_class = ImageBuildSerializer
    filterset_fields = ["revision", "status"]
    not_found_message = "no such image build"

    def get_queryset(self):
        return visible_builds(self.request.user)

    @extend_schema(request=ImageBuildRequestSerializer, responses={202: ImageBuildSerializer})
    def create(self, request):
        given = valid(ImageBuildRequestSerializer, request)
        revision = visible_revisions(request.user).filter(pk=given["revision"]).first()
        if revision is None:
            raise exceptions.NotFound("no such revision")
        forbid_unless(can_change_solution(request.user, revision.solution),
                      "only the model's owner or an admin can build its image")
        build = services.request_build(revision, request.user)  # a refusal names the revision (400)
        return Response(ImageBuildSerializer(build).data, status=status.HTTP_202_ACCEPTED)
