"""aisha-monitor: journal rules, stalled-training detection and alerts for aisha-api."""

__version__ = "0.1.0"
