"""playspeed: self-supervised video representation learning by predicting playback speed."""

__version__ = "0.1.0"
