import google.colab  # noqa: F401  (Colab imports it before any cell runs)
