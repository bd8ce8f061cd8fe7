"""The HTTP layer: routes parse, authorise, call the domain and format HF-style answers."""
