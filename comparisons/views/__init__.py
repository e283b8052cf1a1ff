"""Views of the comparisons app, one module per page family."""
