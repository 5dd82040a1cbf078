"""Scale benchmark: seeds PostgreSQL at sizes S, M, L and measures every main page through the app."""
