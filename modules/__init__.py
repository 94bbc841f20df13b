"""cogarch modules: one folder per module, installed as cogarch.modules.<name>."""
