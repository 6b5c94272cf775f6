"""drawtune."""
