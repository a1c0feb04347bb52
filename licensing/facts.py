"""The one read every licence check starts with, as one SQL statement written once: whether the
revision's licence needs an agreement, whether the caller owns the model, and the caller's rules for
the action from every agreement that covers the revision.

Why SQL here and the ORM everywhere else: a check runs on every download and deploy, and on this
project's machines building an ORM query costs more than PostgreSQL takes to answer it (a one-query
check took 2 ms, of which 0.15 ms was the database; bench/licensing.py). Written once, the statement is
only executed; open licences still cost one round trip, and a licence that needs an agreement costs no
second one to find the caller's rules. It runs on PostgreSQL and SQLite alike (the values each returns
are read back by `_moment` and `_uuid`)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from acumos_portal.accounts.models import Membership, User
from licensing.models import Agreement, LicenceProfile, Rule
from marketplace.models import Revision, Solution, SolutionShare


@dataclass(frozen=True)
class Facts:
    rtu_required: bool
    owned: bool  # the owner or a co-owner (marketplace.selectors.owns, asked in the same statement)
    imported_from: str
    rules: list[Rule]  # each with its agreement loaded


_AGREEMENT = ("id", "solution_id", "revision_id", "status", "starts", "ends", "revoked_at", "revoke_reason",
              "assignee_kind", "assignee_group_id", "assignee_organisation_id")
_RULE = ("id", "action", "kind", "count_limit", "count_used", "live_limit", "live_used")

# Who an agreement names. A user: themselves, a group they are in, an organisation they belong to, or
# the site (every signed-in user); a peer: its certificate subject.
_FOR_USER = ("%(signed_in)s AND (a.assignee_user_id = %(user)s OR a.assignee_kind = 'site'"
             " OR (a.assignee_kind = 'group' AND a.assignee_group_id IN"
             " (SELECT g.group_id FROM {groups} g WHERE g.user_id = %(user)s))"
             " OR (a.assignee_kind = 'organisation' AND a.assignee_organisation_id IN"
             " (SELECT m.organisation_id FROM {members} m WHERE m.user_id = %(user)s)))")
_FOR_PEER = "a.assignee_kind = 'peer' AND a.assignee_peer = %(peer)s"


@cache
def _statement(for_peer: bool) -> str:
    tables = {"profiles": LicenceProfile._meta.db_table, "revisions": Revision._meta.db_table,
              "solutions": Solution._meta.db_table, "shares": SolutionShare._meta.db_table,
              "agreements": Agreement._meta.db_table, "rules": Rule._meta.db_table,
              "groups": User.groups.through._meta.db_table, "members": Membership._meta.db_table}
    assignee = (_FOR_PEER if for_peer else _FOR_USER).format(**tables)
    columns = ", ".join([*(f"a.{c}" for c in _AGREEMENT), *(f"r.{c}" for c in _RULE)])
    return (
        "SELECT p.rtu_required, s.imported_from,"
        " (s.owner_id = %(user)s OR EXISTS (SELECT 1 FROM {shares} x WHERE x.solution_id = s.id"
        " AND x.user_id = %(user)s)) AS owned, " + columns +
        " FROM {profiles} p JOIN {revisions} v ON v.id = p.revision_id JOIN {solutions} s ON s.id = v.solution_id"
        " LEFT JOIN {agreements} a ON p.rtu_required AND a.solution_id = s.id"
        " AND (a.revision_id IS NULL OR a.revision_id = p.revision_id) AND (" + assignee + ")"
        " LEFT JOIN {rules} r ON r.agreement_id = a.id AND r.action = %(action)s"
        " WHERE p.revision_id = %(revision)s"
    ).format(**tables)


def read(who_user, who_peer: str, revision: Revision, action: str) -> Facts | None:
    """None: the revision has no licence profile (open)."""
    params = {"user": getattr(who_user, "pk", None), "signed_in": who_user is not None, "peer": who_peer,
              "action": action,
              "revision": Revision._meta.pk.get_db_prep_value(revision.pk, connection, prepared=False)}
    with connection.cursor() as cursor:
        cursor.execute(_statement(bool(who_peer)), params)
        rows = cursor.fetchall()
    if not rows:
        return None
    first = rows[0]
    rules = [_rule(row[3:]) for row in rows if row[3] is not None and row[3 + len(_AGREEMENT)] is not None]
    return Facts(bool(first[0]), bool(first[2]), first[1] or "", rules)


def _rule(values) -> Rule:
    agreement_values = dict(zip(_AGREEMENT, values[:len(_AGREEMENT)], strict=True))
    rule_values = dict(zip(_RULE, values[len(_AGREEMENT):], strict=True))
    agreement = Agreement(**{**agreement_values, "id": _uuid(agreement_values["id"]),
                             "solution_id": _uuid(agreement_values["solution_id"]),
                             "revision_id": _uuid(agreement_values["revision_id"]),
                             **{k: _moment(agreement_values[k]) for k in ("starts", "ends", "revoked_at")}})
    rule = Rule(**rule_values, agreement_id=agreement.pk)
    rule.agreement = agreement
    return rule


def _uuid(value) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _moment(value) -> dt.datetime | None:
    """PostgreSQL answers aware datetimes; SQLite, the naive UTC text Django stored."""
    if value is None or isinstance(value, dt.datetime) and timezone.is_aware(value):
        return value
    parsed = value if isinstance(value, dt.datetime) else parse_datetime(str(value))
    return timezone.make_aware(parsed, dt.UTC)
