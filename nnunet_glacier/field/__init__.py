"""In the field: GIS scenes in and out, detect, quality flags, retreat time series, shared and imported models."""
