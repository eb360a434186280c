"""A stand-in for Colab's `google.colab` module, for the Colab CI leg: imported at kernel start
(sitecustomize.py), so that a notebook's setup cell takes its Colab branch."""
from types import SimpleNamespace

calls = []
output = SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enable_custom_widget_manager"))
