"""Clips, pools, cohorts, comparisons and judgments, with the rater pages."""
