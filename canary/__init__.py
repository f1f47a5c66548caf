"""canary: a progressive-delivery controller for Kubernetes (SMI TrafficSplit and Gateway API)."""

__version__ = "0.1.0"
