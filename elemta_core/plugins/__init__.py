"""Plugin API and manager."""

from elemta_core.plugins.api import Plugin, PluginInfo, PluginKind, PluginServices

__all__ = ["Plugin", "PluginInfo", "PluginKind", "PluginServices"]
