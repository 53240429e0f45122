"""The staff side of the API: an API key as `Authorization: Bearer <key>`, or a staff session."""
