"""Transcoders and the feature-level circuits read through them (see `catalog.transcoders.model`)."""
