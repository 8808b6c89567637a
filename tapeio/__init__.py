"""pytp.tapeio."""
