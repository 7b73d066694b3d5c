"""Built-in plugins, published through the ``elemta.plugins`` entry points like any other."""
