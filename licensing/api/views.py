"""/api/v1/licensing/: licences and templates, a dry-run access check, offers, agreements (grant, list,
revoke), access requests (both sides), click-through acceptance and usage (JSON or CSV). Writes go
through licensing.services; what it refuses answers 400 naming the field, 403, or 409 (a pending
request, a changed text); a policy denial answers 403 or 402 with its reason code."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from acumos_portal.api.errors import refusals_about
from acumos_portal.api.views import AnyAcceptNegotiation, VisibleObjectMixin, forbid_unless, valid
from licensing import policy, profiles, relicensing, selectors, services, templates, usage_csv
from licensing.api.serializers import (
    AcceptInput,
    AccessApproveInput,
    AccessDeclineInput,
    AccessQuery,
    AccessRequestInput,
    AccessRequestSerializer,
    AgreementSerializer,
    CheckInput,
    LicenceGrantInput,
    LicenceSerializer,
    OfferInput,
    OfferSerializer,
    RelicenseInput,
    RequestListQuery,
    RevokeInput,
    UsageQueryInput,
    UsageRecordSerializer,
)
from marketplace import selectors as market

SIGNED_IN = [permissions.IsAuthenticated]


def _visible_solution(user, solution_id):
    solution = market.visible_solutions(user).filter(pk=solution_id).first()
    if solution is None:
        raise exceptions.NotFound("no such model")
    return solution


def _visible_revision(user, revision_id):
    revision = market.visible_revisions(user).filter(pk=revision_id).first()
    if revision is None:
        raise exceptions.NotFound("no such revision")
    return revision


# ---------------------------------------------------------------- licences

ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


@extend_schema(tags=["licensing"], responses={200: OpenApiTypes.OBJECT})
class TemplatesView(APIView):
    """The licence editor's templates: each renders a valid license.json."""

    permission_classes = [permissions.AllowAny]

    def get(self, request):
        return Response([{"key": t.key, "label": t.label, "spdx": t.spdx, "rtu_required": t.rtu_required}
                         for t in templates.TEMPLATES.values()])


@extend_schema(tags=["licensing"], request=CheckInput, responses={200: OpenApiTypes.OBJECT})
class CheckView(APIView):
    """A licence profile's SPDX expression and text checked: the canonical expression, its ids, the text's
    hash, or what is wrong. (The whole Acumos schema is checked again when the licence is saved.)"""

    permission_classes = [permissions.AllowAny]

    def post(self, request):
        given = valid(CheckInput, request)
        with refusals_about("profile"):
            summary = profiles.check(given["profile"])
        return Response({"spdx": summary.spdx, "spdx_ids": summary.spdx_ids, "rtu_required": summary.rtu_required,
                         "text_sha256": summary.text_sha256, "profile": summary.profile})


@extend_schema(tags=["licensing"], parameters=[ID])
class RevisionLicenceViewSet(viewsets.ViewSet):
    """A revision's licence (with its full text, to anyone who can see the revision) and the caller's
    access to it: a dry run of the policy, nothing consumed."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=LicenceSerializer)
    @action(detail=True, methods=["get"])
    def licence(self, request, pk=None):
        revision = _visible_revision(request.user, pk)
        profile = selectors.profile_of(revision)
        if profile is None:
            raise exceptions.NotFound("this revision has no licence profile")
        return Response(LicenceSerializer(profile).data)

    @extend_schema(request=RelicenseInput, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def relicense(self, request, pk=None):
        """A new revision of the same model under a new licence (a ready revision never changes): the same
        files and image, the new license.json. Owners only."""
        forbid_unless(market.signed_in(request.user), "sign in to change a licence")
        revision = _visible_revision(request.user, pk)
        given = valid(RelicenseInput, request)
        with refusals_about("profile"):
            made = relicensing.relicense(request.user, revision, version=given["version"], profile=given["profile"])
        profile = selectors.profile_of(made)
        return Response({"revision": str(made.pk), "version": made.version,
                         "licence": LicenceSerializer(profile).data if profile else None},
                        status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[AccessQuery], responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def access(self, request, pk=None):
        revision = _visible_revision(request.user, pk)
        query = AccessQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        decision = policy.decide(policy.Who.of(request.user), revision, query.validated_data["action"])
        return Response(decision.as_dict())


# ---------------------------------------------------------------- offers

@extend_schema(tags=["licensing"], parameters=[ID])
class OfferViewSet(viewsets.ViewSet):
    """A solution's offer: how people get an agreement (grant only, request, click-through), on what terms,
    and whether access is bought elsewhere. Anyone who sees the model reads it; its owners change it."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=OfferSerializer)
    def retrieve(self, request, pk=None):
        solution = _visible_solution(request.user, pk)
        return Response(OfferSerializer(services.offer_of(solution)).data)

    @extend_schema(request=OfferInput, responses=OfferSerializer)
    def update(self, request, pk=None):
        forbid_unless(market.signed_in(request.user), "sign in to change an offer")
        solution = _visible_solution(request.user, pk)
        forbid_unless(services.may_license(request.user, solution), "only the model's owners change its offer")
        given = valid(OfferInput, request)
        with refusals_about("offer"):
            offer = services.set_offer(request.user, solution, **given)
        return Response(OfferSerializer(offer).data)


# ---------------------------------------------------------------- agreements

@extend_schema(tags=["licensing"])
class AgreementViewSet(VisibleObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Agreements the caller granted (as a licensor) or holds (as a licensee); `?role=licensor|licensee`."""

    serializer_class = AgreementSerializer
    permission_classes = SIGNED_IN
    not_found_message = "no such agreement"
    filterset_fields = ["solution", "status"]

    def get_queryset(self):
        role = self.request.query_params.get("role")
        if role == "licensor":
            return selectors.agreements_granted_by(self.request.user)
        if role == "licensee":
            return selectors.agreements_held_by(self.request.user)
        return selectors.visible_agreements(self.request.user)

    @extend_schema(request=LicenceGrantInput, responses={201: AgreementSerializer})
    def create(self, request):
        given = valid(LicenceGrantInput, request)
        solution = _visible_solution(request.user, given["solution"])
        revision = None
        if given.get("revision"):
            revision = solution.revisions.filter(pk=given["revision"]).first()
            if revision is None:
                raise exceptions.ValidationError({"revision": ["not a version of this model"]})
        with refusals_about("agreement"):
            assignee = services.assignee_named(given["assignee"]["kind"], given["assignee"]["name"])
            terms = services.parse_terms(given["terms"])
            agreement = services.grant(request.user, solution, assignee, terms, revision=revision,
                                       starts=given.get("starts"), ends=given.get("ends"))
        return Response(AgreementSerializer(self.get_queryset().get(pk=agreement.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=RevokeInput, responses=AgreementSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        agreement = self.get_object()
        given = valid(RevokeInput, request)
        with refusals_about("agreement"):
            services.revoke(request.user, agreement, given["reason"])
        return Response(AgreementSerializer(self.get_queryset().get(pk=agreement.pk)).data)

    @extend_schema(responses=UsageRecordSerializer(many=True))
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        agreement = self.get_object()
        page = self.paginate_queryset(selectors.usage_of(agreement, request.user))
        return self.get_paginated_response(UsageRecordSerializer(page, many=True).data)


# ---------------------------------------------------------------- access requests

@extend_schema(tags=["licensing"])
class AccessRequestViewSet(VisibleObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           viewsets.GenericViewSet):
    """Requests for an agreement: `?role=requester` (yours, the default) or `?role=licensor` (to decide),
    `&status=pending|approved|declined|withdrawn`."""

    serializer_class = AccessRequestSerializer
    permission_classes = SIGNED_IN
    not_found_message = "no such request"

    def get_queryset(self):
        if self.action != "list":
            return selectors.visible_requests(self.request.user)
        query = RequestListQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        lister = (selectors.requests_to_decide if query.validated_data["role"] == "licensor"
                  else selectors.requests_made_by)
        return lister(self.request.user, status=query.validated_data.get("status"))

    @extend_schema(request=AccessRequestInput, responses={201: AccessRequestSerializer})
    def create(self, request):
        given = valid(AccessRequestInput, request)
        solution = _visible_solution(request.user, given["solution"])
        revision = solution.revisions.filter(pk=given["revision"]).first() if given.get("revision") else None
        with refusals_about("request"):
            made = services.request_access(request.user, solution, revision=revision, message=given["message"],
                                           answers=given["answers"])
        return Response(AccessRequestSerializer(made).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AccessApproveInput, responses=AgreementSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        found = self.get_object()
        given = valid(AccessApproveInput, request)
        with refusals_about("request"):
            agreement = services.approve(request.user, found, terms=given.get("terms"), reason=given["reason"])
        return Response(AgreementSerializer(selectors.visible_agreements(request.user).get(pk=agreement.pk)).data)

    @extend_schema(request=AccessDeclineInput, responses=AccessRequestSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        found = self.get_object()
        given = valid(AccessDeclineInput, request)
        with refusals_about("request"):
            services.decline(request.user, found, given["reason"])
        return Response(AccessRequestSerializer(found).data)

    @extend_schema(request=None, responses=AccessRequestSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        found = self.get_object()
        with refusals_about("request"):
            services.withdraw(request.user, found)
        return Response(AccessRequestSerializer(found).data)


# ---------------------------------------------------------------- click-through

@extend_schema(tags=["licensing"], parameters=[ID])
class AcceptanceViewSet(viewsets.ViewSet):
    permission_classes = SIGNED_IN

    @extend_schema(request=AcceptInput, responses={201: AgreementSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Accept the licence of one revision by sending the hash of the text shown; answered 409 when the
        text is no longer that one."""
        solution = _visible_solution(request.user, pk)
        given = valid(AcceptInput, request)
        revision = solution.revisions.filter(pk=given["revision"]).first()
        if revision is None:
            raise exceptions.ValidationError({"revision": ["not a version of this model"]})
        with refusals_about("acceptance"):
            agreement = services.accept(request.user, revision, given["text_sha256"])
        return Response(AgreementSerializer(selectors.visible_agreements(request.user).get(pk=agreement.pk)).data,
                        status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------- usage

@extend_schema(tags=["licensing"], parameters=[UsageQueryInput], responses={200: OpenApiTypes.OBJECT})
class UsageView(APIView):
    """Usage of the models the caller licenses (all of it for licence admins), per day, model, action,
    agreement and user or peer; `?format=csv` (or `Accept: text/csv`) streams it as CSV."""

    permission_classes = SIGNED_IN
    # `?format=csv` and `Accept: text/csv` pick the CSV here, not DRF's renderer negotiation.
    content_negotiation_class = AnyAcceptNegotiation

    def get(self, request):
        given = UsageQueryInput(data=request.query_params)
        given.is_valid(raise_exception=True)
        fields = given.validated_data
        query = selectors.UsageQuery(solution=str(fields.get("solution") or ""), assignee=fields.get("assignee", ""),
                                     action=fields.get("action", ""), start=fields.get("start"),
                                     end=fields.get("end"))
        rows = selectors.usage_per_day(request.user, query)
        if fields["format"] == "csv" or "text/csv" in request.headers.get("Accept", ""):
            return usage_csv.response(rows)
        return Response([usage_csv.as_row(row) for row in rows[:5000]])
