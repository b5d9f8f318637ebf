"""The workers: turn verified provider events into canonical, deduplicated payment records."""
