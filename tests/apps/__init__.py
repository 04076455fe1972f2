"""The apps on the layer (apps/)."""
