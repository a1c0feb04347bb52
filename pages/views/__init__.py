"""The marketplace's pages, one module per area; each module lists its own `urlpatterns`.
What a user may see comes from marketplace.selectors only; anything else is a 404, so a page
never tells a stranger that a model exists."""
