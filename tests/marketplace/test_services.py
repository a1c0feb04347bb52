"""marketplace.services: publishing and its review, owning, ratings, comments, favorites, counters,
the search index and the notifications each of them sends."""

from __future__ import annotations

import pytest

from marketplace import selectors, services
from marketplace.choices import Audience, NotificationKind, RequestStatus, RevisionStatus
from marketplace.models import Comment, Download, Notification, Publication, PublishRequest, Rating, Solution
from tests.factories import CatalogFactory, CommentFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def revision(owner):
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris Classifier"))


def kinds_for(user) -> list[str]:
    return list(Notification.objects.filter(user=user).values_list("kind", flat=True))


# ---------------------------------------------------------------- publishing

def test_a_self_publish_catalog_publishes_at_once_for_signed_in_users(owner, revision, catalogs):
    publication = services.publish(owner, revision, catalogs["company"])

    assert isinstance(publication, Publication)
    assert Solution.objects.get(pk=revision.solution_id).audience == Audience.SIGNED_IN


def test_a_catalog_that_needs_approval_makes_a_request_and_tells_the_publishers(owner, publisher, admin_user,
                                                                                 other_user, revision, catalogs):
    request = services.publish(owner, revision, catalogs["public"], message="please")

    assert isinstance(request, PublishRequest) and request.is_pending
    assert not Publication.objects.exists()
    assert Solution.objects.get(pk=revision.solution_id).audience == Audience.PRIVATE
    assert kinds_for(publisher) == [NotificationKind.PUBLISH_REQUESTED]
    assert kinds_for(admin_user) == [NotificationKind.PUBLISH_REQUESTED]
    assert kinds_for(other_user) == [] and kinds_for(owner) == []


def test_approval_publishes_to_anyone_and_tells_the_owner(owner, publisher, revision, catalogs):
    request = services.publish(owner, revision, catalogs["public"])

    publication = services.approve(publisher, request, "nice")

    assert publication.approved_by == publisher and publication.published_by == owner
    assert Solution.objects.get(pk=revision.solution_id).audience == Audience.ANYONE
    request.refresh_from_db()
    assert (request.status, request.reviewed_by, request.review_comment) == (RequestStatus.APPROVED, publisher, "nice")
    assert kinds_for(owner) == [NotificationKind.PUBLISH_APPROVED]


def test_declining_needs_a_comment_and_tells_the_owner(owner, publisher, revision, catalogs):
    request = services.publish(owner, revision, catalogs["public"])

    with pytest.raises(services.Refused) as refused:
        services.decline(publisher, request, "  ")
    assert refused.value.field == "comment"

    services.decline(publisher, request, "no description")
    request.refresh_from_db()
    assert request.status == RequestStatus.DECLINED
    assert Notification.objects.get(user=owner).message == "no description"
    assert not Publication.objects.exists()


def test_a_publisher_cannot_review_their_own_model_or_one_they_co_own(publisher, owner, catalogs):
    own = RevisionFactory(solution=SolutionFactory(owner=publisher))
    request = services.publish(publisher, own, catalogs["public"])
    with pytest.raises(services.Refused, match="their own"):
        services.approve(publisher, request)

    shared = RevisionFactory(solution=SolutionFactory(owner=owner))
    services.share(owner, shared.solution, publisher.username)
    request = services.publish(owner, shared, catalogs["public"])
    with pytest.raises(services.Refused):
        services.approve(publisher, request)
    assert not Publication.objects.exists()


def test_only_publishers_review_and_only_once(owner, other_user, publisher, revision, catalogs):
    request = services.publish(owner, revision, catalogs["public"])
    with pytest.raises(services.Refused):
        services.approve(other_user, request)

    services.approve(publisher, request)
    with pytest.raises(services.Refused, match="already approved"):
        services.decline(publisher, request, "changed my mind")


@pytest.mark.parametrize("case", ["twice", "pending twice", "onboarding", "deleted", "stranger"])
def test_what_cannot_be_published(case, owner, other_user, revision, catalogs):
    catalog, user = catalogs["company"], owner
    if case == "twice":
        services.publish(owner, revision, catalog)
    elif case == "pending twice":
        catalog = catalogs["public"]
        services.publish(owner, revision, catalog)
    elif case == "onboarding":
        revision.status = RevisionStatus.ONBOARDING
        revision.save()
    elif case == "deleted":
        services.soft_delete(owner, revision.solution)
        revision.solution.refresh_from_db()
    else:
        user = other_user

    with pytest.raises(services.Refused):
        services.publish(user, revision, catalog)


def test_withdraw_and_unpublish(owner, revision, catalogs):
    request = services.publish(owner, revision, catalogs["public"])
    services.withdraw(owner, request)
    assert PublishRequest.objects.get().status == RequestStatus.WITHDRAWN
    with pytest.raises(services.Refused):
        services.withdraw(owner, request)

    publication = services.publish(owner, revision, catalogs["company"])
    services.unpublish(owner, publication)
    assert Solution.objects.get(pk=revision.solution_id).audience == Audience.PRIVATE


def test_the_widest_catalog_decides_the_audience(owner, publisher, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    services.approve(publisher, services.publish(owner, revision, catalogs["public"]))
    assert Solution.objects.get(pk=revision.solution_id).audience == Audience.ANYONE

    services.unpublish(owner, Publication.objects.get(catalog=catalogs["public"]))
    assert Solution.objects.get(pk=revision.solution_id).audience == Audience.SIGNED_IN


# ---------------------------------------------------------------- owning

def test_sharing_makes_a_co_owner_who_is_told_and_may_manage_but_not_delete(owner, co_owner, revision):
    services.share(owner, revision.solution, co_owner.username)

    assert kinds_for(co_owner) == [NotificationKind.SHARED]
    assert selectors.can_change_solution(co_owner, revision.solution)
    assert not selectors.can_delete_solution(co_owner, revision.solution)
    with pytest.raises(services.Refused):
        services.soft_delete(co_owner, revision.solution)


@pytest.mark.parametrize("name", ["nobody", "owner", "co-owner"])
def test_sharing_refuses_unknown_users_the_owner_and_twice(name, owner, co_owner, revision):
    services.share(owner, revision.solution, co_owner.username)

    with pytest.raises(services.Refused) as refused:
        services.share(owner, revision.solution, name)
    assert refused.value.field == "username"


def test_soft_delete_hides_withdraws_and_restore_brings_back(owner, other_user, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    request = services.publish(owner, revision, catalogs["public"])

    services.soft_delete(owner, revision.solution)

    assert not selectors.visible_solutions(other_user).exists()
    assert not selectors.visible_solutions(owner).exists()
    assert list(selectors.deleted_solutions(owner)) == [revision.solution]
    request.refresh_from_db()
    assert request.status == RequestStatus.WITHDRAWN

    services.restore(owner, revision.solution)
    assert list(selectors.visible_solutions(other_user)) == [revision.solution]


def test_details_change_tags_and_the_search_text(owner, revision):
    services.update_details(owner, revision.solution, description="Flowers", tags=["botany", "tabular"],
                            model_type="CL")

    solution = Solution.objects.get(pk=revision.solution_id)
    assert sorted(solution.tags.values_list("name", flat=True)) == ["botany", "tabular"]
    assert "botany" in solution.search_text and "flowers" in solution.search_text
    with pytest.raises(services.Refused) as refused:
        services.update_details(owner, solution, description="", tags=[f"t{i}" for i in range(11)], model_type="CL")
    assert refused.value.field == "tags"


# ---------------------------------------------------------------- ratings, comments, favorites

def test_owners_and_co_owners_do_not_rate_their_own_model(owner, co_owner, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    services.share(owner, revision.solution, co_owner.username)
    for who in (owner, co_owner):
        with pytest.raises(services.Refused, match="ratings are for others") as refused:
            services.rate(who, revision.solution, 5)
        assert refused.value.field == "stars"
    assert not Rating.objects.exists()


def test_ratings_keep_the_average_and_tell_the_owner_once(owner, other_user, publisher, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    solution = revision.solution

    services.rate(other_user, solution, 5, "great")
    services.rate(publisher, solution, 2)
    services.rate(other_user, solution, 4)  # changes the first rating, adds none

    solution.refresh_from_db()
    assert (solution.rating_count, solution.rating_sum, solution.rating_avg) == (2, 6, 3.0)
    assert kinds_for(owner) == [NotificationKind.REVIEW, NotificationKind.REVIEW]

    services.unrate(publisher, solution)
    solution.refresh_from_db()
    assert (solution.rating_count, solution.rating_avg) == (1, 4.0)


@pytest.mark.parametrize("stars", [0, 6, -1])
def test_stars_are_one_to_five(stars, owner, other_user, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    with pytest.raises(services.Refused) as refused:
        services.rate(other_user, revision.solution, stars)
    assert refused.value.field == "stars"


def test_nobody_takes_part_in_what_they_cannot_see(other_user, revision):
    for act in (lambda: services.rate(other_user, revision.solution, 3),
                lambda: services.add_comment(other_user, revision.solution, "hi"),
                lambda: services.toggle_favorite(other_user, revision.solution)):
        with pytest.raises(services.Refused):
            act()


def test_a_reply_tells_the_owner_and_the_parent_author_not_the_replier(owner, other_user, publisher, revision,
                                                                     catalogs):
    services.publish(owner, revision, catalogs["company"])
    question = services.add_comment(other_user, revision.solution, "Which features?")
    services.add_comment(publisher, revision.solution, "Petal sizes.", parent=question)

    assert kinds_for(owner) == [NotificationKind.COMMENT, NotificationKind.COMMENT]
    assert kinds_for(other_user) == [NotificationKind.COMMENT]
    assert kinds_for(publisher) == []
    threads = selectors.comment_threads(revision.solution)
    assert [c.text for c in threads] == ["Which features?"]
    assert [c.text for c in threads[0].thread_replies] == ["Petal sizes."]


def test_comments_refuse_empty_text_and_a_parent_from_another_model(owner, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    elsewhere = CommentFactory()
    with pytest.raises(services.Refused) as refused:
        services.add_comment(owner, revision.solution, "   ")
    assert refused.value.field == "text"
    with pytest.raises(services.Refused) as refused:
        services.add_comment(owner, revision.solution, "hi", parent=elsewhere)
    assert refused.value.field == "parent"


def test_only_the_author_or_an_admin_deletes_a_comment(owner, other_user, admin_user, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    comment = services.add_comment(other_user, revision.solution, "hi")
    with pytest.raises(services.Refused):
        services.delete_comment(owner, comment)
    services.delete_comment(admin_user, comment)


def test_a_comment_with_replies_stays_as_a_placeholder_until_its_last_reply_goes(owner, other_user, revision,
                                                                                   catalogs):
    services.publish(owner, revision, catalogs["company"])
    top = services.add_comment(other_user, revision.solution, "Which features?")
    answer = services.add_comment(owner, revision.solution, "Petal sizes.", parent=top)

    services.delete_comment(other_user, top)
    top.refresh_from_db()
    assert top.deleted_at is not None and top.text == ""
    assert [c.text for c in selectors.comment_threads(revision.solution)[0].thread_replies] == ["Petal sizes."]
    with pytest.raises(services.Refused, match="was deleted") as refused:
        services.add_comment(owner, revision.solution, "More?", parent=top)
    assert refused.value.field == "parent"
    with pytest.raises(services.Refused, match="already"):
        services.delete_comment(other_user, top)

    services.delete_comment(owner, answer)
    assert not Comment.objects.exists()  # the placeholder went with its last reply


def test_favorite_toggles(owner, other_user, revision, catalogs):
    services.publish(owner, revision, catalogs["company"])
    assert services.toggle_favorite(other_user, revision.solution) is True
    assert services.toggle_favorite(other_user, revision.solution) is False


def test_counters(owner, revision):
    services.record_view(revision.solution)
    services.record_view(revision.solution)
    services.begin_download(None, revision, kind="bundle")

    solution = Solution.objects.get(pk=revision.solution_id)
    assert (solution.view_count, solution.download_count) == (2, 1)
    assert Download.objects.get().user is None


def test_a_view_counts_once_per_visitor_and_never_for_the_owner(owner, other_user, revision):
    solution = revision.solution
    assert services.record_view(solution, viewer=owner, visitor=selectors.visitor_key(owner, None)) is False
    them = selectors.visitor_key(other_user, None)
    assert services.record_view(solution, viewer=other_user, visitor=them) is True
    assert services.record_view(solution, viewer=other_user, visitor=them) is False
    assert services.record_view(solution, visitor=selectors.visitor_key(None, "192.0.2.9", "curl")) is True
    assert Solution.objects.get(pk=solution.pk).view_count == 2


def test_visitor_keys_do_not_hold_the_address():
    key = selectors.visitor_key(None, "192.0.2.9", "Firefox")
    assert "192.0.2.9" not in key and key == selectors.visitor_key(None, "192.0.2.9", "Firefox")
    assert key != selectors.visitor_key(None, "192.0.2.9", "Chrome") != selectors.visitor_key(None, "192.0.2.8")


def test_notifications_are_marked_read_per_user(owner, other_user):
    mine = services.notify(owner, NotificationKind.SHARED, "one")
    services.notify(owner, NotificationKind.SHARED, "two")
    theirs = services.notify(other_user, NotificationKind.SHARED, "three")

    assert services.mark_read(owner, [mine.pk, theirs.pk]) == 1
    assert selectors.unread_count(owner) == 1 and selectors.unread_count(other_user) == 1
    assert services.mark_read(owner) == 1
    assert selectors.unread_count(owner) == 0


def test_catalogs_are_seeded_once(catalogs):
    services.seed_catalogs()
    assert catalogs["public"].access == "PB" and not catalogs["public"].self_publish
    assert catalogs["company"].access == "RS" and catalogs["company"].self_publish
    assert CatalogFactory(name="Public Models").pk == catalogs["public"].pk
