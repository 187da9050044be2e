"""rnnconf — property-based conformance of recurrent sequence-model kernels against high-precision oracles."""
__version__ = "0.1.0"
