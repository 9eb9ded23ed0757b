"""Command-line clients: one module per subcommand, each light to import."""
