"""The web process's modules (web/), one test module each, with fakes at the boundaries."""
