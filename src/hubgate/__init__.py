"""hubgate: a self-hosted gateway to the Hugging Face Hub."""

__version__ = "0.1.0"
