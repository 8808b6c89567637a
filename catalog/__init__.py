"""pytp.catalog."""
