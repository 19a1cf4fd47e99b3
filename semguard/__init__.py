"""semguard: sim-to-real image translation that keeps semantic labels and boxes true."""

__version__ = "0.1.0"
