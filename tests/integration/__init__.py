"""Process-level tests: the Procfile's real web and brain processes, ZeroMQ on loopback, the fake
Ollama over HTTP, and WebSocket or Chromium clients that behave like a browser."""
