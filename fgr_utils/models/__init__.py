"""Models of every track: a timm backbone factory and the method-specific heads built on it."""
