"""The shell around ingest and consumers: command line, configuration, logging, metrics, clients."""

__version__ = "0.1.0"
