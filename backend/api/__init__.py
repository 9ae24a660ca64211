"""The HTTP service speaking Label Studio's ML-backend protocol. Never imports torch."""
