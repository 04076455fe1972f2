"""The brain's modules (brain/), one test module each, with fakes at the boundaries."""
