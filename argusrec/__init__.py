"""argusrec: train, evaluate and serve large generative transformer recommenders."""

__version__ = "0.1.0"
