"""The Vertex AI profile: settings, staging to Cloud Storage, the CustomJob and its worker."""
