"""The camera's layout check (conftest.layout_problems) on small pages of its own, at phone width: it must
find content a box clips or a card cuts off although the page fits the window, which a page-width check
cannot see, and must not mistake what is cut off on purpose (a table scrolling in its card, text ended with
an ellipsis, visually-hidden text, an icon button's text pushed aside, a long value in a field) for a
problem. Then the same with the portal's own style sheet: the onboarding steps table, stacked on a phone,
fits its card."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.conftest import REPO

from .conftest import PHONE, layout_problems

PORTAL_CSS = REPO / "static" / "css" / "portal.css"
TABLE = "<table><tr>" + "".join(f"<td>column{i}&nbsp;with&nbsp;a&nbsp;long&nbsp;value</td>" for i in range(6))
TABLE += "</tr></table>"
BASIC = """<style>
  body { margin: 0; font: 16px sans-serif; }
  .card { margin: 10px; border: 1px solid; }
  .card--flush { overflow: hidden; }
  .table-scroll { overflow-x: auto; }
  .ellipsis { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
  .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .fixed-width { width: 600px; }
  .icon-only { width: 24px; height: 24px; overflow: hidden; text-indent: -3000px; }
</style>"""


@pytest.fixture
def phone(browser) -> Page:
    context = browser.new_context(viewport=PHONE)
    yield context.new_page()
    context.close()


def problems_in(page: Page, body: str, style: str = BASIC) -> list[str]:
    page.set_content(f"<!doctype html><html><head>{style}</head><body>{body}</body></html>")
    return layout_problems(page)


def test_a_card_that_clips_a_table_is_found(phone):
    found = problems_in(phone, f'<div class="card card--flush" id="steps">{TABLE}</div>')
    assert len(found) == 2, found
    assert found[0].startswith('div#steps.card.card--flush clips ') and "of its content sideways" in found[0]
    assert found[1].startswith("table reaches ")
    assert "past the right edge of its card div#steps.card.card--flush" in found[1]


def test_content_spilling_out_of_its_card_is_found_although_the_page_fits(phone):
    body = '<div class="card narrow" id="late"><div class="wider">Duration and log</div></div>'
    style = BASIC.replace("</style>", ".narrow { width: 200px; } .wider { width: 300px; }</style>")
    found = problems_in(phone, body, style)
    # 300px from inside the card's left border, in a card 200px wide and two 1px borders: 99px past its edge.
    assert found == ['div.wider reaches 99px past the right edge of its card div#late.card.narrow '
                     '("Duration and log")'], found


def test_a_table_scrolling_inside_its_card_is_fine(phone):
    assert problems_in(phone, f'<div class="card card--flush"><div class="table-scroll">{TABLE}</div></div>') == []


def test_what_is_cut_off_on_purpose_is_not_a_problem(phone):
    body = f"""<div class="card card--flush">
      <p class="ellipsis">{"A long name that ends in an ellipsis " * 10}</p>
      <span class="visually-hidden">{"Read by screen readers only " * 10}</span>
      <button class="icon-only">Choose the selected groups</button>
      <input value="{"a long value the field scrolls " * 10}">
      <details><summary>Log</summary><div class="fixed-width">closed, so not drawn</div></details>
    </div>"""
    assert problems_in(phone, body) == []


def test_the_page_itself_too_wide_is_still_found(phone):
    found = problems_in(phone, '<div class="fixed-width">wide</div>')
    assert found == [f"600px wide in a {PHONE['width']}px window; sticking out: div.fixed-width (right edge 600)"]


def test_the_steps_table_stacks_in_its_card_on_a_phone(phone):
    """With portal.css, the table of includes/steps_table.html fits a phone without scrolling sideways: the
    skip reason, in the last column, is read where it is, inside the window."""
    reason = "Skipped: no image builder is configured on this site (ACUMOS_IMAGE_BUILDER is empty). " * 3
    rows = "".join(f"""<tr class="step step--skipped"><td class="num muted step__position">{n}</td>
      <td class="step__what"><span class="step__title">Build the model image</span>
        <span class="step__name">build_image</span></td>
      <td class="step__status"><span class="badge badge--skipped">Skipped</span></td>
      <td class="num nowrap step__duration">0.01 s</td>
      <td class="step__log"><span class="muted small">{reason}</span></td></tr>""" for n in range(1, 4))
    body = f"""<main class="container"><div class="card card--flush"><div class="table-scroll"><table class="steps">
      <thead><tr><th>#</th><th>Step</th><th>Status</th><th>Duration</th><th>Log</th></tr></thead>
      <tbody>{rows}</tbody></table></div></div></main>"""
    phone.set_content(f"<!doctype html><html><head></head><body>{body}</body></html>")
    phone.add_style_tag(path=str(PORTAL_CSS))
    assert layout_problems(phone) == []
    log = phone.locator(".step__log").first.bounding_box()
    assert log["x"] >= 0 and log["x"] + log["width"] <= PHONE["width"], log
    scroller = phone.locator(".table-scroll")
    assert scroller.evaluate("box => box.scrollWidth <= box.clientWidth")  # nothing hidden to the right
