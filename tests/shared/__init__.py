"""What both processes share (shared/)."""
