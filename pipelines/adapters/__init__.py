"""The edges of the system: filesystem artifacts, git, DVC, Great Expectations, LiteRT."""
