"""/api/v1/batch-jobs (start, list), /api/v1/batch-jobs/{id} (read), .../cancel, .../predictions and .../errors, and
/api/v1/batch-uploads (a file to use as an input). Who may: batch.selectors; a job the caller may not see is 404,
a deployment they see but may not run batches on is 403 (batch.services.NotAllowed)."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from acumos_portal.api.errors import refusals_about
from acumos_portal.api.views import valid
from acumos_portal.uploads import check_upload_size
from batch import selectors, services
from batch.api.serializers import BatchJobSerializer, BatchStartSerializer, BatchUploadSerializer
from batch.models import BatchJob
from deployment.selectors import visible_deployments
from marketplace.selectors import visible_revisions


def _job(request, pk) -> BatchJob:
    job = selectors.visible_jobs(request.user).filter(pk=pk).first()
    if job is None:
        raise exceptions.NotFound("no such batch job")
    return job


def _runs_on(user, given) -> dict:
    """The deployment or the revision named, among those the caller sees (404 for one they do not)."""
    found = {}
    if given.get("deployment"):
        found["deployment"] = visible_deployments(user).filter(pk=given["deployment"]).first()
        if found["deployment"] is None:
            raise exceptions.NotFound("no such deployment")
    if given.get("revision"):
        found["revision"] = visible_revisions(user).select_related("solution").filter(pk=given["revision"]).first()
        if found["revision"] is None:
            raise exceptions.NotFound("no such revision")
    return found


@extend_schema(tags=["batch"])
class JobsView(generics.ListAPIView):
    """Your batch jobs, newest first (an admin sees everyone's)."""

    serializer_class = BatchJobSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return BatchJob.objects.none()
        return selectors.visible_jobs(self.request.user)

    @extend_schema(request=BatchStartSerializer, responses={202: BatchJobSerializer})
    def post(self, request):
        """Start a batch job on a running deployment you manage, or on a version of your model run in a sandbox of its
        own for the job's time; it runs in the background (poll it)."""
        given = valid(BatchStartSerializer, request)
        with refusals_about("batch job"):
            job = services.start_job(user=request.user, **_runs_on(request.user, given), method=given["method"],
                                     input=given["input"], format=given.get("format"),
                                     id_column=given.get("id_column", ""), output_prefix=given.get("output_prefix", ""),
                                     output_format=given.get("output_format"),
                                     shard_rows=given.get("shard_rows"))
        return Response(BatchJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["batch"])
class JobView(APIView):
    @extend_schema(responses={200: BatchJobSerializer})
    def get(self, request, pk):
        """The job: state, progress, rows per second, where its outputs are, how many rows failed."""
        return Response(BatchJobSerializer(_job(request, pk)).data)


@extend_schema(tags=["batch"])
class JobCancelView(APIView):
    @extend_schema(request=None, responses={200: BatchJobSerializer})
    def post(self, request, pk):
        """Cancel: a pending job at once, a running one after the shard it is on; nothing of it is kept."""
        with refusals_about("batch job"):
            job = services.cancel(_job(request, pk), request.user)
        return Response(BatchJobSerializer(job).data)


@extend_schema(tags=["batch"])
class UploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}}}, responses={201: BatchUploadSerializer})
    def post(self, request):
        """Upload a file (part `file`) to use as a job's input: {kind: upload, upload: <id>}."""
        uploaded = request.FILES.get("file")
        check_upload_size(request)
        if uploaded is None:
            raise exceptions.ValidationError({"file": ["send the input as the multipart part `file`"]})
        with refusals_about("upload"):
            upload = services.upload_input(user=request.user, uploaded=uploaded)
        return Response(BatchUploadSerializer(upload).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["batch"])
class JobOutputView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY,
                              (200, "application/x-ndjson"): OpenApiTypes.BINARY})
    def get(self, request, pk, which):
        """A finished job's predictions or errors file (as the job wrote it: CSV or JSON lines), streamed."""
        found = selectors.output_download(_job(request, pk), which)
        if found is None:
            raise exceptions.NotFound(f"this job has no {which} file (yet): it is written when the job succeeds")
        handle, name, media = found
        return FileResponse(handle, as_attachment=True, filename=name, content_type=media)
