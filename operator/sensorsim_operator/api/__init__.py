"""The SensorSimulation API types, one module per version (like k6-operator's api/v1alpha1)."""
