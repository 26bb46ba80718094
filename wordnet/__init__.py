"""WordNet: Hinton's 4-gram neural language model, bit-exact with the C reference."""
__version__ = "0.1.0"
