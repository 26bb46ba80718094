"""Serving: the MLflow pyfunc model (``pyfunc``)."""
