"""TOML configuration: the core's sections, plugin sections, and strict validation."""

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import Config, load_config

__all__ = ["Config", "ConfigError", "load_config"]
