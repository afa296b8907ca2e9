"""circuit-catalog: a catalog of transformer circuits with provenance, overlap and reuse queries.

The package imports nothing heavy: torch and TransformerLens load only when discovery runs.
"""

__version__ = "0.1.0"
