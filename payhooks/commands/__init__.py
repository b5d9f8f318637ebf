"""The operator commands (replay, dlq, offsets, trace): click wrappers over ``consumers`` tools."""
