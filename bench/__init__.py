"""Benchmarks of the receiver: `python -m bench.receiver` measures R0, R2 and P0 side by side.

R0 is a minimal Starlette POST handler (``bench.minimal_app``), R2 the real receiver
(``ingest.app``), both under one uvicorn configuration (``bench.serve``); P0 is the raw aiokafka
producer sending the same records (``bench.producer``). ``bench/README.md`` says how to read them.
"""
