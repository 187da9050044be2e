"""Registers every built-in oracle."""
from . import register_oracle
from .hgrn import hgrn_oracle

register_oracle("hgrn", hgrn_oracle)
from .mingru import mingru_oracle, minlstm_oracle  # noqa: E402

register_oracle("mingru", mingru_oracle)
register_oracle("minlstm", minlstm_oracle)
from .hgrn_layer import hgrn_layer_oracle  # noqa: E402

register_oracle("hgrn-layer", hgrn_layer_oracle)
