"""Researcher exports: comparison datasets with a dataset card, and taste-model JSON.

``schema`` fixes the columns, ``rows`` reads judgments into rows, ``writers``
encodes them as CSV, JSON Lines or Parquet, ``card`` describes the result and
``files`` ties these together into files that appear complete or not at all.
"""
