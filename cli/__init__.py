"""pytp.cli."""
