"""Frame features for the label pipeline: Kaldi-compatible MFCC and encoder layer features."""

from speechssl.features.spec import FeatureSpec

__all__ = ["FeatureSpec"]
