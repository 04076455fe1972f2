"""The benchmark's and the eval's own code (bench/)."""
