"""The wire contract: JSON Schema files, record value types, topic, header and key names."""
