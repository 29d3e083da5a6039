"""Request and response models of the HTTP API (pydantic): they validate input and describe output in
``/openapi.json``."""
