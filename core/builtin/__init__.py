"""Built-in behaviour, registered through entry points exactly like third-party plugins."""
