"""{{ text|markdown }}: an owner's Markdown (a model card's details) as HTML safe to put in a page, through the one
renderer and allow-list the descriptions use (marketplace.markdown)."""

from django import template

from marketplace.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text):
    return render_markdown(text or "")
