"""Command-line interface: one module per verb, each with ``get_parser()`` and ``main(argv) -> int``."""
