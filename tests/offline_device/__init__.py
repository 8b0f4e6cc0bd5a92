"""The device side of offline payments: secure element and local store, no server."""
