"""rung: climb the LLM customization ladder only as far as your own evals say."""

__version__ = "0.1.0"
