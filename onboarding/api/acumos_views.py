"""The Acumos onboarding API, /onboarding-app/v2/: what acumos-python-client's `push` and `auth` send,
answered in Acumos's envelope so existing push scripts work unchanged.

    POST /onboarding-app/v2/models  multipart model, metadata, schema[, license]
         headers Authorization (`<login>:<api token>`, `Bearer <token>` or a bare JWT/API token),
         isCreateMicroservice (default true), deploy, tracking_id
         -> 201 {"status": "SUCCESS", "result": {solutionId, revisionId, version, name}, "taskId", "trackingId"}
    POST /onboarding-app/v2/auth    {"request_body": {"username", "password"}} -> 200 {"jwtToken": ...}

Errors: {"status": "ERROR", "errorCode", "errorMessage", "errors": [{"field", "message"}]}."""

from __future__ import annotations

import logging
import math
import uuid

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from acumos_portal import capacity
from acumos_portal.accounts import services as account_services
from acumos_portal.api.authentication import TokenAuthentication
from acumos_portal.api.refusals import Refused
from acumos_portal.api.throttling import ClientScopedRateThrottle
from acumos_portal.api.views import AnyAcceptNegotiation
from acumos_portal.uploads import UploadTooLarge
from onboarding import http
from onboarding.api.views import parse_flag, parse_tracking_id, read_parts
from onboarding.choices import Source
from onboarding.services import OnboardingQuotaReached, check_open, check_quota, onboarding_start
from onboarding.validation import Invalid

log = logging.getLogger(__name__)

UNAUTHORIZED = "UNAUTHORIZED"
INVALID_PARAMETER = "INVALID_PARAMETER"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
ONBOARDING_CLOSED = "ONBOARDING_CLOSED"
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
MISSING_CREDENTIALS = ("Unauthorized User: no credentials; send the header `Authorization: <login>:<api token>` "
                       "or `Authorization: Bearer <token>` (an API token, or the jwtToken from "
                       "/onboarding-app/v2/auth)")
WRONG_CREDENTIALS = "Unauthorized User: the token is wrong, expired or revoked"

_CODES = {
    exceptions.ParseError: INVALID_PARAMETER,
    exceptions.ValidationError: INVALID_PARAMETER,
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.PermissionDenied: "FORBIDDEN",
    exceptions.Throttled: "TOO_MANY_REQUESTS",
}
# A refusal's code (acumos_portal.api.refusals) as Acumos names it; any other refusal is an invalid parameter.
_REFUSAL_CODES = {"onboarding_closed": ONBOARDING_CLOSED, "quota_exceeded": QUOTA_EXCEEDED,
                  "token_scope": "FORBIDDEN"}


def acumos_error(status_code: int, code: str, message: str, errors: list[dict] | None = None,
                 headers: dict | None = None) -> Response:
    body = {"status": "ERROR", "errorCode": code, "errorMessage": message, "errors": errors or []}
    return Response(body, status=status_code, headers=headers)


def acumos_refusal(refused: Refused) -> Response:
    """A refusal with its status and message, as the native API answers it, and Acumos's code for it."""
    code = _REFUSAL_CODES.get(refused.code, INVALID_PARAMETER)
    return acumos_error(refused.status, code, refused.message, _refusal_errors(refused))


def _refusal_errors(refused: Refused) -> list[dict]:
    """Where it applies, as Acumos's `errors` list it."""
    if isinstance(refused, Invalid):
        errors = [{"field": e.get("field") or refused.part, "message": e.get("message", "")} for e in refused.errors]
        return errors or [{"field": refused.part, "message": refused.message}]
    if isinstance(refused, OnboardingQuotaReached):
        return [{"field": "", "message": f"at most {refused.details['quota']} jobs in flight"}]
    return [{"field": refused.field, "message": refused.message}] if refused.field else []


def acumos_upload_too_large(too_large: UploadTooLarge) -> Response:
    return acumos_error(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, PAYLOAD_TOO_LARGE, str(too_large),
                        [{"field": "", "message": f"the limit is {too_large.limit} bytes"}])


def acumos_exception_handler(exc, context):
    """Every error of these views in the Acumos envelope, including the ones DRF raises itself."""
    if isinstance(exc, Refused):
        return acumos_refusal(exc)
    if isinstance(exc, UploadTooLarge):
        return acumos_upload_too_large(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message = MISSING_CREDENTIALS if isinstance(exc, exceptions.NotAuthenticated) else WRONG_CREDENTIALS
        auth_header = getattr(exc, "auth_header", None)
        return acumos_error(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED, message,
                            headers={"WWW-Authenticate": auth_header} if auth_header else None)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "ERROR")
        detail = exc.detail
        message = str(detail) if isinstance(detail, str) else "the request is invalid"
        wait = getattr(exc, "wait", None)  # a throttle or the sign-in lockout: when to try again
        return acumos_error(exc.status_code, code, message,
                            headers={"Retry-After": str(math.ceil(wait))} if wait else None)
    shortage = capacity.shortage_of(exc)  # a busy database (503) or a full disk (507): not a bug
    if shortage is not None:
        return acumos_error(shortage.status, shortage.acumos_code, shortage.message, headers=shortage.headers)
    error_id = uuid.uuid4().hex[:12]
    log.exception("acumos onboarding API failed [%s]", error_id)
    return acumos_error(status.HTTP_500_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR",
                        f"internal error (error id {error_id})")


class AcumosView(APIView):
    """Token-authenticated (no session, hence no CSRF), JSON answers in the Acumos envelope."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AnyAcceptNegotiation

    def get_exception_handler(self):
        return acumos_exception_handler


ERROR_ENVELOPE = inline_serializer("AcumosError", {
    "status": serializers.CharField(default="ERROR"),
    "errorCode": serializers.CharField(),
    "errorMessage": serializers.CharField(),
    "errors": serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
})


class PushModelView(AcumosView):
    parser_classes = [MultiPartParser]
    # A retraining hook's token pushes here: onboarding_start keeps it to its solution (check_scope).
    accepts_scoped_tokens = True

    @extend_schema(
        tags=["acumos"], operation_id="acumos_push_model",
        parameters=[
            OpenApiParameter("isCreateMicroservice", bool, OpenApiParameter.HEADER, description="default true"),
            OpenApiParameter("deploy", bool, OpenApiParameter.HEADER, description="true implies isCreateMicroservice"),
            OpenApiParameter("tracking_id", str, OpenApiParameter.HEADER),
        ],
        request={"multipart/form-data": inline_serializer("AcumosPush", {
            "model": serializers.FileField(help_text="modelpackage.zip (or model.zip)"),
            "metadata": serializers.FileField(help_text="metadata.json"),
            "schema": serializers.FileField(help_text="model.proto"),
            "license": serializers.FileField(required=False, help_text="license.json"),
        })},
        responses={
            201: inline_serializer("AcumosPushResult", {
                "status": serializers.CharField(default="SUCCESS"),
                "result": inline_serializer("AcumosPushSolution", {
                    "solutionId": serializers.UUIDField(), "revisionId": serializers.UUIDField(),
                    "version": serializers.CharField(), "name": serializers.CharField()}),
                "taskId": serializers.UUIDField(help_text="poll GET /api/v1/onboarding/jobs/{taskId}"),
                "trackingId": serializers.CharField(),
                "modelName": serializers.CharField(),
                "dockerImageUri": serializers.CharField(allow_null=True),
            }),
            400: OpenApiResponse(ERROR_ENVELOPE, description="the bundle is invalid"),
            401: OpenApiResponse(ERROR_ENVELOPE, description="missing or wrong credentials"),
            403: OpenApiResponse(ERROR_ENVELOPE, description="a scoped token (a retraining hook's) and a bundle "
                                                             "that is not a revision of its solution"),
            413: OpenApiResponse(ERROR_ENVELOPE, description="larger than ACUMOS_MAX_UPLOAD_BYTES"),
            429: OpenApiResponse(ERROR_ENVELOPE, description="the caller has ACUMOS_QUOTA_ONBOARDING_JOBS jobs in "
                                                             "flight"),
            503: OpenApiResponse(ERROR_ENVELOPE, description="onboarding is closed on this site (ONBOARDING_CLOSED), "
                                                             "or the database is busy (SERVICE_UNAVAILABLE, with "
                                                             "Retry-After)"),
            507: OpenApiResponse(ERROR_ENVELOPE, description="the server's disk is full (INSUFFICIENT_STORAGE); "
                                                             "nothing was kept"),
        })
    def post(self, request):
        """Onboard a model bundle (Acumos push). The pipeline runs in the background."""
        check_open()  # before the body is read (see onboarding.services.OnboardingClosed)
        check_quota(request.user)
        create_microservice = parse_flag(request.headers.get("isCreateMicroservice"), "isCreateMicroservice")
        if parse_flag(request.headers.get("deploy"), "deploy", default=False):
            create_microservice = True  # as in Acumos: deploying needs the microservice
        tracking_id = parse_tracking_id(request.headers.get("tracking_id"))
        with http.workdir() as tmp:
            parts = read_parts(request, tmp)
            job = onboarding_start(user=request.user, parts=parts, source=Source.API, tracking_id=tracking_id,
                                   create_microservice=create_microservice,
                                   scope=account_services.token_scope(request.user))
        return Response({
            "status": "SUCCESS",
            "result": {"solutionId": str(job.solution_uuid), "revisionId": str(job.revision_uuid),
                       "version": job.version, "name": job.model_name},
            "taskId": str(job.id),
            "trackingId": job.tracking_id,
            "modelName": job.model_name,
            "dockerImageUri": None,  # the image is built by the pipeline, after this answer
        }, status=status.HTTP_201_CREATED)


class AuthView(AcumosView):
    authentication_classes = []
    permission_classes = [AllowAny]
    # Guessing is stopped by the sign-in lockout (accounts.lockout); this bounds sign-ins that succeed.
    throttle_classes = [ClientScopedRateThrottle]
    throttle_scope = "password"
    parser_classes = [JSONParser]

    @extend_schema(
        tags=["acumos"], operation_id="acumos_auth",
        request=inline_serializer("AcumosAuthRequest", {"request_body": inline_serializer("AcumosCredentials", {
            "username": serializers.CharField(), "password": serializers.CharField()})}),
        responses={
            200: inline_serializer("AcumosAuthResult", {"status": serializers.CharField(default="SUCCESS"),
                                                        "jwtToken": serializers.CharField()}),
            400: OpenApiResponse(ERROR_ENVELOPE, description="the body is not as described"),
            401: OpenApiResponse(ERROR_ENVELOPE, description="wrong username or password"),
            429: OpenApiResponse(ERROR_ENVELOPE, description="too many failed sign-ins from this address (or "
                                                             "for this account from it): Retry-After says when"),
        })
    def post(self, request):
        """Exchange a username and password for a JWT (also in the `jwtToken` response header), to send
        as `Authorization: <jwt>` or `Authorization: Bearer <jwt>`."""
        body = request.data
        credentials = body.get("request_body") if isinstance(body, dict) else None
        fields = ("username", "password")
        if not isinstance(credentials, dict) or not all(isinstance(credentials.get(f), str) for f in fields):
            missing = [f for f in fields if not isinstance(credentials, dict) or not credentials.get(f)]
            return acumos_error(status.HTTP_400_BAD_REQUEST, INVALID_PARAMETER,
                                'the body must be {"request_body": {"username": "...", "password": "..."}}',
                                [{"field": f"request_body.{f}", "message": "required"} for f in missing or fields])
        try:
            token = account_services.jwt_for_password(request._request, credentials["username"],
                                                      credentials["password"])
        except account_services.LockedOut as locked:
            return acumos_error(status.HTTP_429_TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", str(locked),
                                headers={"Retry-After": str(locked.retry_after)})
        if token is None:
            return acumos_error(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED,
                                "Unauthorized User: wrong username or password")
        return Response({"status": "SUCCESS", "jwtToken": token}, headers={"jwtToken": token})


@csrf_exempt  # token clients send no CSRF token; a 404 changes nothing
def not_found(request, *args, **kwargs):
    """Anything else under /onboarding-app/v2/: a 404 in the envelope, not an HTML page."""
    body = {"status": "ERROR", "errorCode": "NOT_FOUND", "errorMessage": f"no endpoint at {request.path}",
            "errors": []}
    return JsonResponse(body, status=status.HTTP_404_NOT_FOUND)
