"""Models of the comparisons app; see each module for one concern."""

from comparisons.models.clips import Clip, Pool, Prompt
from comparisons.models.cohorts import Cohort, Membership
from comparisons.models.exports import Export
from comparisons.models.imports import FolderImport
from comparisons.models.judgments import Comparison, Judgment

__all__ = ["Clip", "Cohort", "Comparison", "Export", "FolderImport", "Judgment", "Membership", "Pool", "Prompt"]
