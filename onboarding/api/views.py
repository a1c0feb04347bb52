"""/api/v1/onboarding/jobs: upload a bundle, list your jobs, follow one (the Acumos `taskId`).

A job is seen by its owner and by portal admins; anyone else gets 404."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from acumos_portal.accounts.services import token_scope
from acumos_portal.api.views import VisibleObjectMixin
from acumos_portal.uploads import UploadTooLarge
from onboarding import http
from onboarding.api.serializers import JobSerializer, JobSummarySerializer, JobUploadSerializer
from onboarding.choices import Source
from onboarding.models import OnboardingJob
from onboarding.selectors import jobs_with_steps, visible_jobs
from onboarding.services import check_open, check_quota, onboarding_start
from onboarding.validation import Invalid

TRACKING_ID_MAX = OnboardingJob._meta.get_field("tracking_id").max_length
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_flag(value, name: str, default: bool = True) -> bool:
    """`true`/`false` (and 1/0, yes/no, on/off) as sent in a header or a form field."""
    if value is None or str(value).strip() == "":
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Invalid(name, f"{name} must be true or false, not {value!r}", [{"field": name, "message": "not a boolean"}])


def parse_tracking_id(value, name: str = "tracking_id") -> str:
    text = str(value or "").strip()
    if len(text) > TRACKING_ID_MAX:
        raise Invalid(name, f"{name} is longer than {TRACKING_ID_MAX} characters",
                      [{"field": name, "message": f"at most {TRACKING_ID_MAX} characters"}])
    return text


def read_parts(request, workdir) -> dict:
    """The uploaded parts as local paths (onboarding.http). Raises UploadTooLarge past the limit."""
    try:
        return http.parts_from_request(request, workdir)
    except StopUpload as stopped:
        # The size check refused the body before parsing began (see acumos_portal.uploads).
        raise UploadTooLarge(getattr(request, "upload_too_large", None) or settings.ACUMOS_MAX_UPLOAD_BYTES) \
            from stopped


@extend_schema(tags=["onboarding"])
class OnboardingJobViewSet(VisibleObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Onboarding jobs. The id is the Acumos `taskId` that `POST /onboarding-app/v2/models` answers with."""

    serializer_class = JobSerializer
    parser_classes = [MultiPartParser]
    not_found_message = "no such onboarding job"
    # A retraining hook's token pushes and follows its jobs here: kept to its solution's (below).
    accepts_scoped_tokens = True

    def get_serializer_class(self):
        return JobSummarySerializer if self.action == "list" else JobSerializer

    def get_queryset(self):
        user = self.request.user
        if self.action == "retrieve":
            queryset = visible_jobs(user, everyone=True)
        else:
            everyone = self.request.query_params.get("all", "").lower() in _TRUE
            queryset = visible_jobs(user, everyone=everyone)
        scope = token_scope(user)
        if scope is not None:  # a scoped token sees its solution's jobs only, not its owner's others
            queryset = queryset.filter(owner=user, solution_uuid=scope)
        return jobs_with_steps(queryset, logs=self.action != "list")

    @extend_schema(parameters=[OpenApiParameter("all", bool, description="portal admins: every user's jobs")])
    def list(self, request, *args, **kwargs):
        """Your onboarding jobs, newest first (steps without their logs)."""
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        """One job with every step's status, times, error and log. Poll it until `status` is
        `succeeded` or `failed`; `revision` is set once the revision exists."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": JobUploadSerializer}, responses={
        201: JobSerializer, 400: OpenApiResponse(description="the bundle is invalid (details.errors say where)"),
        413: OpenApiResponse(description="the upload is larger than ACUMOS_MAX_UPLOAD_BYTES"),
        429: OpenApiResponse(description="the caller has ACUMOS_QUOTA_ONBOARDING_JOBS jobs in flight "
                                         "(code quota_exceeded)"),
        503: OpenApiResponse(description="onboarding is closed on this site (code onboarding_closed), or the "
                                         "database is busy (code database_busy, with Retry-After)"),
        507: OpenApiResponse(description="the server's disk is full (code disk_full); nothing was kept")})
    def create(self, request, *args, **kwargs):
        """Upload a bundle (parts `model`, `metadata`, `schema`, optional `license`, or one zip as `bundle`)
        and start onboarding it. The pipeline runs in the background: follow the job's `url`."""
        check_open()  # before the body is read: a refused upload leaves nothing behind
        check_quota(request.user)
        with http.workdir() as tmp:
            parts = read_parts(request, tmp)
            job = onboarding_start(
                user=request.user, parts=parts, source=Source.API,
                tracking_id=parse_tracking_id(request.data.get("tracking_id")),
                create_microservice=parse_flag(request.data.get("create_microservice"), "create_microservice"),
                scope=token_scope(request.user))
        job = jobs_with_steps(OnboardingJob.objects.filter(pk=job.pk)).get()
        data = JobSerializer(job, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})
