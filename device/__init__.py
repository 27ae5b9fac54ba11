"""Everything that touches the world: audio in, outputs, config, CLI, daemon."""
