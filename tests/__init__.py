"""The test suite, a package: test modules are imported as ``tests.<folder>.<module>``, so two
folders may hold test files of the same name (pytest's default "prepend" import mode needs
``__init__.py`` files for that), and shared helpers are imported from ``tests.helpers``.
"""
