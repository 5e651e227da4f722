"""The requirement of the test Python agent: importable only from the venv pard built."""
__version__ = "1.2.3"


def shout(text):
    return text.upper()
