"""Comparing two sets of regions: matching (`matching`), annotator agreement (`agreement`) and the
consensus annotation (`consensus`). Regions are first made comparable in pixel space (`regions`)."""
