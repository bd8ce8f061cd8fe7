"""The sub-commands of `hubgate`, one module per area; `hubgate.cli` assembles them."""
