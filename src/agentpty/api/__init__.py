"""HTTP and WebSocket interface: translates requests to service calls."""
