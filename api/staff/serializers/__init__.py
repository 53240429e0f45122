"""The shapes of the staff API's answers, for the OpenAPI schema (`drf-spectacular`).

The views answer with the selectors' dicts as they are (no per-field serializer work on the hot
path); these classes state those shapes, and the contract tests and schemathesis hold the two
together.
"""
