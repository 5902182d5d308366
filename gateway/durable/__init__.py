"""durable layer."""
