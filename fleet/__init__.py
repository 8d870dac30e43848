"""fleet: declarative Docker fleet deployment over SSH."""

__version__ = "0.1.0"
