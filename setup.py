"""Packaging for aisha-monitor."""

from setuptools import find_packages, setup

setup(
    name="aisha-monitor",
    version="0.1.0",
    description="Journal rules, stalled-training detection and alerts for aisha-api",
    python_requires=">=3.11",
    packages=find_packages(include=["monitor", "monitor.*", "rules", "handlers"]),
    package_data={"monitor": ["default_config.yaml"]},
    install_requires=[
        "systemd-python>=235",
        "prometheus-client>=0.17",
        "PyYAML>=6.0",
        "requests>=2.28",
    ],
    extras_require={
        "dev": ["pytest>=7", "ruff>=0.5", "mypy>=1.8", "types-PyYAML", "types-requests"],
    },
    entry_points={"console_scripts": ["aisha-monitor=monitor.cli:main"]},
)
