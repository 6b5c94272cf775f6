"""Training and running models: ms-swift's commands, the GPU stages, topology, telemetry,
estimates and the tiny demo model."""
