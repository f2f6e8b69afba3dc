"""A plugin module that fails while it imports (a missing dependency of the user's package)."""

import not_installed_dependency  # noqa: F401
