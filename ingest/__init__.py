"""The receiver: verifies PSP webhooks over their raw bytes and publishes them to Kafka."""
