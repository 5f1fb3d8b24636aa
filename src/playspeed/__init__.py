"""playspeed: self-supervised video representation learning by predicting playback speed."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_backbone"]


def __getattr__(name: str):
    # `playspeed.load_backbone` without importing torch for every `import playspeed` (the
    # CLI's --help stays instant).
    if name == "load_backbone":
        from playspeed.export import load_backbone

        return load_backbone
    raise AttributeError(f"module 'playspeed' has no attribute {name!r}")
