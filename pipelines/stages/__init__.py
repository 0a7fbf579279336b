"""One module per stage, each with ``run(workspace) -> Result``."""
