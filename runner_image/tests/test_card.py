"""`pack --card`: a model card from a Markdown file's YAML front matter (Hugging Face's form) or from JSON, into
metadata.json's modelCard. What a card may hold is the portal's to judge at upload; here, only the reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner_image import cli
from runner_image.card import CardError, read_card

from .test_pack import iris_args, iris_model, model_file  # noqa: F401 (fixtures)

MARKDOWN = """---
task: classification
hyperparameters: {n_estimators: 10, criterion: gini}
explainability:
  methods: [feature_importance]
  global: true
evaluation:
  - {metric: accuracy, value: 0.96, dataset: "iris, 30 % held out"}
license: apache-2.0
tags: [tabular]
---
# Iris classifier

A random forest over the four measurements.

## Intended use

Teaching: iris species from four measurements.

## Limitations

Three species only.

### Known errors

Versicolor and virginica overlap.

## Training

Ten trees, fixed seed.
"""


def write(tmp_path: Path, text: str, name: str = "MODEL_CARD.md") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_front_matter_gives_the_fields_and_the_body_the_texts(tmp_path):
    card, left_out = read_card(write(tmp_path, MARKDOWN))

    assert card["task"] == "classification"
    assert card["hyperparameters"] == {"n_estimators": 10, "criterion": "gini"}
    assert card["explainability"] == {"methods": ["feature_importance"], "global": True}
    assert card["evaluation"] == [{"metric": "accuracy", "value": 0.96, "dataset": "iris, 30 % held out"}]
    assert card["intendedUse"] == "Teaching: iris species from four measurements."
    # A section runs to the next heading of its level or higher: its subsections are its own.
    assert card["limitations"] == "Three species only.\n\n### Known errors\n\nVersicolor and virginica overlap."
    assert card["details"] == ("# Iris classifier\n\nA random forest over the four measurements.\n\n## Training\n\n"
                               "Ten trees, fixed seed.")
    assert left_out == ["license", "tags"]


def test_front_matter_wins_over_a_section_and_snake_case_and_pipeline_tags_are_understood(tmp_path):
    card, left_out = read_card(write(tmp_path, "---\npipeline_tag: tabular-regression\nintended_use: Pricing.\n"
                                               "---\n## Intended use\n\nSomething else.\n"))

    assert card == {"task": "regression", "intendedUse": "Pricing."}
    assert left_out == []


def test_a_pipeline_tag_the_portal_has_no_task_for_is_left_out_saying_so(tmp_path):
    card, left_out = read_card(write(tmp_path, "---\npipeline_tag: fill-mask\n---\n"))

    assert card == {} and left_out == ["pipeline_tag"]


def test_a_markdown_file_without_front_matter_is_all_details(tmp_path):
    assert read_card(write(tmp_path, "Just words.\n")) == ({"details": "Just words."}, [])


def test_a_json_card_is_taken_as_it_is(tmp_path):
    card = {"task": "ranking", "limitations": "none known"}

    assert read_card(write(tmp_path, json.dumps(card), "card.json")) == (card, [])


@pytest.mark.parametrize(("text", "name", "said"), [
    ("---\ntask: [classification\n---\n", "c.md", r"front matter is not YAML \(line 3, column 1\)"),
    ("---\ntask: classification\n", "c.md", "no line of --- ends it"),
    ("---\n- a\n- b\n---\n", "c.md", "must be a mapping of fields"),
    ("---\n!!python/object/apply:os.system [echo hi]\n---\n", "c.md", "not YAML"),
    ("[1, 2]", "c.json", "a card is a JSON object"),
    ("{nope", "c.json", "not JSON"),
])
def test_a_file_that_is_no_card_is_refused_saying_where(tmp_path, text, name, said):
    with pytest.raises(CardError, match=said):
        read_card(write(tmp_path, text, name))


def test_pack_writes_the_card_into_metadata_and_says_what_it_left_out(model_file, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bundle"
    card_file = write(tmp_path, MARKDOWN)

    assert cli.main(iris_args(model_file, out, "--card", str(card_file))) == 0

    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["modelCard"] == read_card(card_file)[0]
    assert "left out license, tags (not fields of a model card)" in capsys.readouterr().err


def test_pack_refuses_a_card_it_cannot_read_and_writes_nothing(model_file, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bundle"

    assert cli.main(iris_args(model_file, out, "--card", str(write(tmp_path, "---\nx: [\n---\n")))) == 2

    assert "front matter is not YAML" in capsys.readouterr().err and not out.exists()
