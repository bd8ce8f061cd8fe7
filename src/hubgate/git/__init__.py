"""Git objects (built with dulwich) and LFS pointers."""
