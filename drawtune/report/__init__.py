"""The report's pictures and tables (rules report_assets and report_provenance)."""
