"""Training, export and generation for the composer models."""
