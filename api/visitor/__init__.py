"""The visitor side of the API: a conversation's token as `Authorization: Bearer <token>`."""
