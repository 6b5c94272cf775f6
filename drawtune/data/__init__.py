"""The data stages: reading and validating annotated drawings, splitting them, converting them
to ms-swift rows, and synthetic drawings for the demo."""
