"""SRA-CL Lite: the library behind the notebooks in notebooks/ (see README.md)."""
__version__ = "0.1.0"
