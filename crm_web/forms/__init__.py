"""Flask-WTF forms: the shape of input only; rules about the domain live in services."""
